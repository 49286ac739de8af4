import { lvmCrc } from './lvm-crc';

/** The metadata area header's size; the circular text buffer starts after it. */
export const MDA_HEADER_SIZE = 512;
const MAGIC = Buffer.from(' LVM2 x[5A%r0N*>', 'latin1');
const FMTT_VERSION = 1;
const RAW_LOCN_SIZE = 24;
/** RAW_LOCN_IGNORED: the area is kept but not updated (metadataignore); its text may be stale. */
export const RAW_LOCN_IGNORED = 1;

export interface RawLocation {
  /** Byte offset of the text from the start of the metadata area. */
  offset: number;
  size: number;
  checksum: number;
  flags: number;
}

export interface MdaHeader {
  start: number;
  size: number;
  /** Slot 0 is the committed metadata; slot 1, when present, a precommitted copy (not read). */
  locations: RawLocation[];
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/**
 * Parses and checks an mda_header as lvm2's raw_parse_mda_header does
 * (checksum, magic, version, start, size). Returns the reason it is unusable
 * instead of throwing: a PV keeps a second copy to fall back on.
 */
export function parseMdaHeader(sector: Buffer, expectedStart: number): { ok: true; header: MdaHeader; checksumOk: true } | { ok: false; reason: string; checksum: boolean } {
  if (sector.length < MDA_HEADER_SIZE) return { ok: false, reason: 'short header', checksum: false };
  const stored = sector.readUInt32LE(0);
  const computed = lvmCrc(sector.subarray(4, MDA_HEADER_SIZE));
  if (stored !== computed) {
    return { ok: false, reason: `mda header checksum 0x${stored.toString(16)} does not match 0x${computed.toString(16)}`, checksum: true };
  }
  if (!sector.subarray(4, 20).equals(MAGIC)) return { ok: false, reason: 'wrong mda header magic', checksum: false };
  const version = sector.readUInt32LE(20);
  if (version !== FMTT_VERSION) return { ok: false, reason: `mda header version ${version}`, checksum: false };
  const start = u64(sector, 24);
  if (start !== expectedStart) return { ok: false, reason: `mda header says it starts at ${start}, not ${expectedStart}`, checksum: false };
  const size = u64(sector, 32);
  if (size < MDA_HEADER_SIZE) return { ok: false, reason: `metadata area size ${size} is too small`, checksum: false };
  const locations: RawLocation[] = [];
  for (let at = 40; at + RAW_LOCN_SIZE <= MDA_HEADER_SIZE; at += RAW_LOCN_SIZE) {
    const offset = u64(sector, at);
    // lvm2's list ends at the first zero offset; slot 0 may be all zeros (no metadata yet).
    if (offset === 0 && locations.length > 0) break;
    locations.push({ offset, size: u64(sector, at + 8), checksum: sector.readUInt32LE(at + 16), flags: sector.readUInt32LE(at + 20) });
    if (offset === 0) break;
  }
  return { ok: true, header: { start, size, locations }, checksumOk: true };
}
