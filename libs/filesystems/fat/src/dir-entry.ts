/**
 * The 32-byte directory entry in its two shapes: the 8.3 ("short") entry
 * and the VFAT long-name slot (attribute 0x0f), with the short name's
 * checksum that ties the slots to their entry.
 */
export const ENTRY_BYTES = 32;

export const ATTR_RO = 0x01;
export const ATTR_HIDDEN = 0x02;
export const ATTR_SYS = 0x04;
export const ATTR_VOLUME = 0x08;
export const ATTR_DIR = 0x10;
export const ATTR_ARCH = 0x20;
/** Read-only + hidden + system + volume: a long-name slot. */
export const ATTR_LFN = 0x0f;

/** Byte 12 ("lcase", NT reserved): the 8.3 base / extension is shown lower-case. */
export const CASE_LOWER_BASE = 0x08;
export const CASE_LOWER_EXT = 0x10;

export const DELETED = 0xe5;

export interface ShortEntry {
  /** The 11 raw name bytes (8 base + 3 extension, space padded). */
  name: Buffer;
  attr: number;
  lcase: number;
  /** Creation time's 10 ms units (0–199). */
  ctimeCs: number;
  ctime: number;
  cdate: number;
  adate: number;
  time: number;
  date: number;
  /** First cluster (the high 16 bits count on FAT32 only). */
  start: number;
  size: number;
}

export function parseShortEntry(b: Buffer, offset: number, fat32: boolean): ShortEntry {
  const hi = fat32 ? b.readUInt16LE(offset + 20) : 0;
  return {
    name: b.subarray(offset, offset + 11),
    attr: b[offset + 11] ?? 0,
    lcase: b[offset + 12] ?? 0,
    ctimeCs: b[offset + 13] ?? 0,
    ctime: b.readUInt16LE(offset + 14),
    cdate: b.readUInt16LE(offset + 16),
    adate: b.readUInt16LE(offset + 18),
    time: b.readUInt16LE(offset + 22),
    date: b.readUInt16LE(offset + 24),
    start: hi * 0x10000 + b.readUInt16LE(offset + 26),
    size: b.readUInt32LE(offset + 28),
  };
}

/** The 13 UTF-16 units a long-name slot carries, in name order. */
export function slotUnits(b: Buffer, offset: number): number[] {
  const units: number[] = [];
  for (const [from, count] of [
    [1, 5],
    [14, 6],
    [28, 2],
  ] as const) {
    for (let i = 0; i < count; i++) units.push(b.readUInt16LE(offset + from + i * 2));
  }
  return units;
}

/** The checksum of an 11-byte short name that every long-name slot of it repeats. */
export function shortNameChecksum(name: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + (name[i] ?? 0)) & 0xff;
  return sum;
}

const DOT = Buffer.from('.          ', 'latin1');
const DOTDOT = Buffer.from('..         ', 'latin1');
export const isDotEntry = (name: Buffer): boolean => name.equals(DOT);
export const isDotDotEntry = (name: Buffer): boolean => name.equals(DOTDOT);
/** Deleted (0xe5) or never used (0x00): the kernel's IS_FREE. */
export const isFree = (name: Buffer): boolean => name[0] === DELETED || name[0] === 0;
