import { crcMatches } from './checksum';
import { corrupt } from './errors';
import type { Superblock } from './superblock';

export const DaMagic = {
  NODE: 0xfebe,
  NODE3: 0x3ebe,
  ATTR_LEAF: 0xfbee,
  ATTR3_LEAF: 0x3bee,
} as const;

const DA3_CRC_OFFSET = 12;

/** The shared header of dabtree blocks (xfs_da_blkinfo / xfs_da3_blkinfo): sibling links and magic. */
export interface DaBlockInfo {
  forw: number;
  back: number;
  magic: number;
}

/** Reads the block info and, on v5, checks the CRC, block number, uuid and owner as xfs_da3_blkinfo_verify does. */
export function checkDaBlock(sb: Superblock, buf: Buffer, daddr: number, owner: number, what: string): DaBlockInfo {
  if (buf.length < (sb.crc ? 64 : 16)) throw corrupt(what, 'short');
  const info = { forw: buf.readUInt32BE(0), back: buf.readUInt32BE(4), magic: buf.readUInt16BE(8) };
  if (sb.crc) {
    if (info.magic !== DaMagic.NODE3 && info.magic !== DaMagic.ATTR3_LEAF) throw corrupt(what, `bad magic 0x${info.magic.toString(16)}`);
    if (!crcMatches(buf, 0, buf.length, DA3_CRC_OFFSET)) throw corrupt(what, 'bad CRC');
    if (buf.readBigUInt64BE(16) !== BigInt(daddr)) throw corrupt(what, 'wrong block number');
    if (!buf.subarray(32, 48).equals(sb.metaUuid)) throw corrupt(what, 'wrong uuid');
    if (buf.readBigUInt64BE(48) !== BigInt(owner)) throw corrupt(what, 'wrong owner');
  } else if (info.magic !== DaMagic.NODE && info.magic !== DaMagic.ATTR_LEAF) {
    throw corrupt(what, `bad magic 0x${info.magic.toString(16)}`);
  }
  return info;
}

export function isNode(info: DaBlockInfo): boolean {
  return info.magic === DaMagic.NODE || info.magic === DaMagic.NODE3;
}

/** An interior dabtree node: its level and the block of its first child. */
export function parseDaNode(sb: Superblock, buf: Buffer, what: string): { level: number; firstChild: number } {
  const hdr = sb.crc ? 64 : 16;
  const count = buf.readUInt16BE(sb.crc ? 56 : 12);
  const level = buf.readUInt16BE(sb.crc ? 58 : 14);
  if (count === 0 || hdr + count * 8 > buf.length) throw corrupt(what, `node with ${count} entries`);
  if (level === 0 || level > 5) throw corrupt(what, `node level ${level}`);
  return { level, firstChild: buf.readUInt32BE(hdr + 4) };
}
