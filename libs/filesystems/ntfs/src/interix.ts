import { utf16ToBytes } from './unicode';

/** Interix (SFU) special files ntfs-3g creates by default: a system file whose data starts with a magic. */
const INTX_SYMLINK = Buffer.from('IntxLNK\x01', 'latin1');
const INTX_CHR = Buffer.from('IntxCHR\x00', 'latin1');
const INTX_BLK = Buffer.from('IntxBLK\x00', 'latin1');
const MAGIC = 8;
/** Magic, major, minor. */
const DEVICE_SIZE = 24;
/** ntfs-3g looks at data of at most this size (a PATH_MAX target). */
export const INTX_MAX = MAGIC + 2 * 4096;

export type Interix = { kind: 'symlink'; target: Buffer } | { kind: 'char' | 'block'; major: bigint; minor: bigint } | undefined;

/** Whether the size makes ntfs-3g read the data to look for a magic. */
export function mayBeInterix(dataSize: number): boolean {
  return dataSize > MAGIC && dataSize <= INTX_MAX;
}

export function parseInterix(data: Buffer): Interix {
  const magic = data.subarray(0, MAGIC);
  if (data.length === DEVICE_SIZE && (magic.equals(INTX_CHR) || magic.equals(INTX_BLK))) {
    return { kind: magic.equals(INTX_CHR) ? 'char' : 'block', major: data.readBigUInt64LE(8), minor: data.readBigUInt64LE(16) };
  }
  if (magic.equals(INTX_SYMLINK)) return { kind: 'symlink', target: utf16ToBytes(data.subarray(MAGIC, MAGIC + ((data.length - MAGIC) & ~1))) };
  return undefined;
}

/**
 * st_rdev as Node's lstat shows it through FUSE: ntfs-3g's makedev() goes
 * to the kernel as a 32-bit new-style number (12-bit major, 20-bit minor),
 * which glibc then encodes again.
 */
export function fuseRdev(major: bigint, minor: bigint): number {
  const dev32 = Number(((major & 0xfffn) << 8n) | (minor & 0xffn) | ((minor & 0xfff00n) << 12n)) >>> 0;
  const ma = (dev32 & 0xfff00) >>> 8;
  const mi = (dev32 & 0xff) | ((dev32 >>> 12) & 0xfff00);
  return ma * 256 + (mi & 0xff) + (mi & ~0xff) * 4096;
}
