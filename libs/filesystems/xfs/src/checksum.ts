import { crc32c } from '@strata/filesystem';

const ZERO4 = Buffer.alloc(4);

/**
 * XFS metadata CRC (xfs_verify_cksum): CRC-32C seeded with ~0 over the
 * structure with its own 4-byte CRC field counted as zeros, stored inverted
 * in little-endian order.
 */
export function xfsCrc(buf: Buffer, start: number, length: number, crcOffset: number): number {
  let c = crc32c(0xffffffff, buf, start, start + crcOffset);
  c = crc32c(c, ZERO4);
  c = crc32c(c, buf, start + crcOffset + 4, start + length);
  return ~c >>> 0;
}

export function crcMatches(buf: Buffer, start: number, length: number, crcOffset: number): boolean {
  if (start < 0 || length < crcOffset + 4 || start + length > buf.length) return false;
  return buf.readUInt32LE(start + crcOffset) === xfsCrc(buf, start, length, crcOffset);
}
