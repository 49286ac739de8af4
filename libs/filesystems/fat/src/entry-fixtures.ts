/** Test support: hand-made directory entries (short entries and long-name slots). */
import { ATTR_LFN, ENTRY_BYTES, shortNameChecksum } from './dir-entry';

export interface ShortFields {
  attr?: number;
  lcase?: number;
  start?: number;
  size?: number;
  time?: number;
  date?: number;
  ctimeCs?: number;
  ctime?: number;
  cdate?: number;
  adate?: number;
}

export function shortEntry(name11: string | Buffer, f: ShortFields = {}): Buffer {
  const b = Buffer.alloc(ENTRY_BYTES);
  const name = typeof name11 === 'string' ? Buffer.from(name11.padEnd(11, ' '), 'latin1') : name11;
  name.copy(b, 0, 0, 11);
  b[11] = f.attr ?? 0x20;
  b[12] = f.lcase ?? 0;
  b[13] = f.ctimeCs ?? 0;
  b.writeUInt16LE(f.ctime ?? 0, 14);
  b.writeUInt16LE(f.cdate ?? 0, 16);
  b.writeUInt16LE(f.adate ?? 0, 18);
  b.writeUInt16LE(Math.floor((f.start ?? 0) / 0x10000), 20);
  b.writeUInt16LE(f.time ?? 0, 22);
  b.writeUInt16LE(f.date ?? 0, 24);
  b.writeUInt16LE((f.start ?? 0) & 0xffff, 26);
  b.writeUInt32LE(f.size ?? 0, 28);
  return b;
}

/** The long-name slots for `units` (UTF-16), last slot first as on disk, tied to `shortName`. */
export function lfnSlots(units: number[], shortName: string | Buffer, checksum?: number): Buffer[] {
  const name = typeof shortName === 'string' ? Buffer.from(shortName.padEnd(11, ' '), 'latin1') : shortName;
  const sum = checksum ?? shortNameChecksum(name);
  const count = Math.ceil(units.length / 13) || 1;
  const padded = [...units];
  if (padded.length < count * 13) padded.push(0);
  while (padded.length < count * 13) padded.push(0xffff);
  const slots: Buffer[] = [];
  for (let s = count; s >= 1; s--) {
    const b = Buffer.alloc(ENTRY_BYTES);
    b[0] = s | (s === count ? 0x40 : 0);
    b[11] = ATTR_LFN;
    b[13] = sum;
    const part = padded.slice((s - 1) * 13, s * 13);
    const at = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
    part.forEach((u, k) => b.writeUInt16LE(u, at[k] ?? 0));
    slots.push(b);
  }
  return slots;
}

export function utf16Units(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
  return out;
}
