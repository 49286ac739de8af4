import { crcMatches } from './checksum';
import { corrupt } from './errors';
import { DirEntry, entryIno, fileTypeOf } from './directory-entry';
import type { Superblock } from './superblock';

const DIR2_BLOCK_MAGIC = 0x58443242; // XD2B
const DIR2_DATA_MAGIC = 0x58443244; // XD2D
const DIR3_BLOCK_MAGIC = 0x58444233; // XDB3
const DIR3_DATA_MAGIC = 0x58444433; // XDD3
const FREE_TAG = 0xffff;
const V4_HEADER = 16;
const V5_HEADER = 64;
const DIR3_CRC_OFFSET = 4;

/**
 * Checks one directory data block ("block" form with its leaf tail, or a
 * data block of a leaf/node directory) as xfs_dir3_data_read's verifier
 * does, and returns its entries in block order ("." and ".." included).
 * `daddr` is the block's first sector, `owner` the directory's inode.
 */
export function parseDataBlock(sb: Superblock, buf: Buffer, daddr: number, owner: number, what: string): DirEntry[] {
  const magic = buf.readUInt32BE(0);
  const isBlock = magic === (sb.crc ? DIR3_BLOCK_MAGIC : DIR2_BLOCK_MAGIC);
  if (!isBlock && magic !== (sb.crc ? DIR3_DATA_MAGIC : DIR2_DATA_MAGIC)) throw corrupt(what, 'bad magic');
  const header = sb.crc ? V5_HEADER : V4_HEADER;
  if (sb.crc) {
    if (!crcMatches(buf, 0, buf.length, DIR3_CRC_OFFSET)) throw corrupt(what, 'bad CRC');
    if (buf.readBigUInt64BE(8) !== BigInt(daddr)) throw corrupt(what, 'wrong block number');
    if (!buf.subarray(24, 40).equals(sb.metaUuid)) throw corrupt(what, 'wrong uuid');
    if (buf.readBigUInt64BE(40) !== BigInt(owner)) throw corrupt(what, 'wrong owner');
  }
  let end = buf.length;
  if (isBlock) {
    const count = buf.readUInt32BE(buf.length - 8);
    const stale = buf.readUInt32BE(buf.length - 4);
    end = buf.length - 8 - count * 8;
    if (stale > count || end < header) throw corrupt(what, `block tail with ${count} leaf entries`);
  }
  const out: DirEntry[] = [];
  let pos = header;
  while (pos < end) {
    if (end - pos < 8) throw corrupt(what, `entry at ${pos} is truncated`);
    if (buf.readUInt16BE(pos) === FREE_TAG) {
      const len = buf.readUInt16BE(pos + 2);
      if (len < 8 || len % 8 !== 0 || pos + len > end || buf.readUInt16BE(pos + len - 2) !== pos) {
        throw corrupt(what, `free space at ${pos} of ${len} bytes`);
      }
      pos += len;
      continue;
    }
    const namelen = buf[pos + 8];
    const size = (8 + 1 + namelen + (sb.ftype ? 1 : 0) + 2 + 7) & ~7;
    if (namelen === 0 || pos + size > end) throw corrupt(what, `entry at ${pos} overruns the block`);
    if (buf.readUInt16BE(pos + size - 2) !== pos) throw corrupt(what, `entry at ${pos} has a bad tag`);
    const name = Buffer.from(buf.subarray(pos + 9, pos + 9 + namelen));
    const type = sb.ftype ? fileTypeOf(buf[pos + 9 + namelen]) : 'unknown';
    out.push({ name, ino: entryIno(buf.readBigUInt64BE(pos)), type });
    pos += size;
  }
  return out;
}
