import { xfsCrc } from '../checksum';
import type { Superblock } from '../superblock';

const SHORT_BTREE = new Set([0x41423342, 0x41423343, 0x49414233, 0x46494233, 0x524d4233, 0x52334643]);
const DA3 = new Set([0x3ebe, 0x3bee, 0x3df1, 0x3dff]);

function stamp(buf: Buffer, start: number, length: number, crcOffset: number): void {
  if (start + length > buf.length || length < crcOffset + 4) return;
  buf.writeUInt32LE(xfsCrc(buf, start, length, crcOffset), start + crcOffset);
}

/**
 * Recomputes the CRC of a v5 metadata buffer after log regions were copied
 * into it: the kernel's write verifiers do this when recovery writes the
 * buffer back, and this reader checks CRCs on everything it reads.
 */
export function restampCrc(sb: Superblock, buf: Buffer): void {
  if (!sb.crc || buf.length < 16) return;
  const m32 = buf.readUInt32BE(0);
  if (m32 === 0x58465342) return stamp(buf, 0, sb.sectSize, 224);
  if (m32 === 0x58414746) return stamp(buf, 0, sb.sectSize, 216);
  if (m32 === 0x58414749) return stamp(buf, 0, sb.sectSize, 312);
  if (m32 === 0x5841464c) return stamp(buf, 0, sb.sectSize, 32);
  if (SHORT_BTREE.has(m32)) return stamp(buf, 0, buf.length, 52);
  if (m32 === 0x424d4133) return stamp(buf, 0, buf.length, 64);
  if (m32 === 0x58444233 || m32 === 0x58444433 || m32 === 0x58444633) return stamp(buf, 0, buf.length, 4);
  if (m32 === 0x58534c4d) return stamp(buf, 0, buf.length, 12);
  if (m32 === 0x5841524d) {
    for (let at = 0; at + sb.blockSize <= buf.length; at += sb.blockSize) if (buf.readUInt32BE(at) === 0x5841524d) stamp(buf, at, sb.blockSize, 12);
    return;
  }
  if (DA3.has(buf.readUInt16BE(8))) return stamp(buf, 0, buf.length, 12);
  if (buf.readUInt16BE(0) === 0x494e) restampInodes(sb, buf);
}

/** Every v3 inode of an inode cluster buffer. */
export function restampInodes(sb: Superblock, buf: Buffer): void {
  if (!sb.crc) return;
  for (let at = 0; at + sb.inodeSize <= buf.length; at += sb.inodeSize) {
    if (buf.readUInt16BE(at) === 0x494e && buf[at + 4] === 3) stamp(buf, at, sb.inodeSize, 100);
  }
}

/** The LSN a v5 buffer records of its last write (xlog_recover_get_buf_lsn), or undefined to replay regardless. */
export function bufferLsn(sb: Superblock, buf: Buffer): bigint | undefined {
  if (!sb.crc || buf.length < 64) return undefined;
  const m32 = buf.readUInt32BE(0);
  const at = (lsnOff: number, uuidOff: number): bigint | undefined =>
    buf.subarray(uuidOff, uuidOff + 16).equals(sb.metaUuid) ? buf.readBigUInt64BE(lsnOff) : undefined;
  if (SHORT_BTREE.has(m32)) return at(24, 32);
  if (m32 === 0x424d4133) return at(32, 40);
  if (m32 === 0x58414746) return at(208, 64);
  if (m32 === 0x5841464c) return at(24, 8);
  if (m32 === 0x58414749) return at(320, 296);
  if (m32 === 0x58534c4d) return at(48, 16);
  if (m32 === 0x58444233 || m32 === 0x58444433 || m32 === 0x58444633) return at(16, 24);
  if (m32 === 0x58465342) return buf.length >= 264 ? at(240, sb.metaUuid === sb.uuid ? 32 : 248) : undefined;
  if (DA3.has(buf.readUInt16BE(8))) return at(24, 32);
  return undefined;
}
