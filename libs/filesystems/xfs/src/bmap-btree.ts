import { crcMatches } from './checksum';
import { corrupt } from './errors';
import { EXTENT_RECORD_SIZE, Extent, checkOrder, decodeExtent } from './extent';
import { fsbToLinear } from './geometry';
import { ForkFormat, type XfsInode } from './inode';
import type { Volume } from './volume';

const BMAP_MAGIC = 0x424d4150; // 'BMAP'
const BMAP_CRC_MAGIC = 0x424d4133; // 'BMA3'
const LBLOCK_V4_SIZE = 24;
const LBLOCK_V5_SIZE = 72;
const LBLOCK_CRC_OFFSET = 64;
/** XFS_BM_MAXLEVELS is 9 for the data fork with large extent counts. */
const MAX_LEVELS = 9;

export type Fork = 'data' | 'attr';

/**
 * All extents of a fork, in file order: the inline list of an EXTENTS fork,
 * or the leaves of a BTREE fork (xfs_iread_extents), every block checked as
 * xfs_bmbt_verify does.
 */
export async function forkExtents(vol: Volume, inode: XfsInode, fork: Fork): Promise<Extent[]> {
  const raw = fork === 'data' ? inode.dataFork : inode.attrFork;
  const format = fork === 'data' ? inode.format : inode.aformat;
  const count = fork === 'data' ? inode.nextents : inode.anextents;
  const what = `${fork} fork of inode ${inode.ino}`;
  if (!raw) return [];
  const out: Extent[] = [];
  if (format === ForkFormat.EXTENTS) {
    for (let i = 0; i < count; i++) out.push(decodeExtent(vol.sb, raw, i * EXTENT_RECORD_SIZE, what));
  } else if (format === ForkFormat.BTREE) {
    const level = raw.readUInt16BE(0);
    const numrecs = raw.readUInt16BE(2);
    const maxrecs = Math.floor((raw.length - 4) / 16);
    if (level === 0 || level >= MAX_LEVELS || numrecs === 0 || numrecs > maxrecs) throw corrupt(what, `btree root with level ${level}, ${numrecs} records`);
    const state: WalkState = { blocks: 0, limit: Math.max(inode.nblocks, 1), count, seen: new Set() };
    for (let i = 0; i < numrecs; i++) {
      const ptr = Number(raw.readBigUInt64BE(4 + maxrecs * 8 + i * 8));
      await walk(vol, inode.ino, ptr, level - 1, out, state, what);
    }
  } else {
    throw corrupt(what, `fork format ${format} has no extents`);
  }
  if (out.length !== count) throw corrupt(what, `${out.length} extents found, ${count} recorded`);
  checkOrder(out, what);
  return out;
}

interface WalkState {
  blocks: number;
  limit: number;
  count: number;
  /** Blocks already walked: a block reached twice is a loop or a shared subtree, never a real tree. */
  seen: Set<number>;
}

async function walk(vol: Volume, ino: number, fsb: number, level: number, out: Extent[], state: WalkState, what: string): Promise<void> {
  const { sb } = vol;
  if (++state.blocks > state.limit) throw corrupt(what, 'btree has more blocks than the inode owns');
  const linear = fsbToLinear(sb, fsb, what);
  if (state.seen.has(linear)) throw corrupt(what, `btree block ${fsb} is reached twice`);
  state.seen.add(linear);
  const mb = await vol.reader.metadata(linear * sb.blockSize, sb.blockSize, what);
  const b = mb.data;
  const hdr = sb.crc ? LBLOCK_V5_SIZE : LBLOCK_V4_SIZE;
  if (!mb.verified.has('bmbt')) {
    if (b.readUInt32BE(0) !== (sb.crc ? BMAP_CRC_MAGIC : BMAP_MAGIC)) throw corrupt(what, `btree block ${fsb}: bad magic`);
    if (sb.crc) {
      if (!crcMatches(b, 0, sb.blockSize, LBLOCK_CRC_OFFSET)) throw corrupt(what, `btree block ${fsb}: bad CRC`);
      if (b.readBigUInt64BE(24) !== BigInt(linear * (sb.blockSize / 512))) throw corrupt(what, `btree block ${fsb}: wrong block number`);
      if (!b.subarray(40, 56).equals(sb.metaUuid)) throw corrupt(what, `btree block ${fsb}: wrong uuid`);
      if (b.readBigUInt64BE(56) !== BigInt(ino)) throw corrupt(what, `btree block ${fsb}: wrong owner`);
    }
    mb.verified.add('bmbt');
  }
  const blockLevel = b.readUInt16BE(4);
  const numrecs = b.readUInt16BE(6);
  if (blockLevel !== level) throw corrupt(what, `btree block ${fsb}: level ${blockLevel}, expected ${level}`);
  if (level === 0) {
    const maxrecs = Math.floor((sb.blockSize - hdr) / EXTENT_RECORD_SIZE);
    if (numrecs === 0 || numrecs > maxrecs) throw corrupt(what, `btree leaf ${fsb}: ${numrecs} records`);
    if (out.length + numrecs > state.count) throw corrupt(what, `btree holds more than ${state.count} extents`);
    for (let i = 0; i < numrecs; i++) {
      const e = decodeExtent(sb, b, hdr + i * EXTENT_RECORD_SIZE, what);
      const prev = out[out.length - 1];
      if (prev && e.offset < prev.offset + prev.count) throw corrupt(what, `extents out of order at file block ${e.offset}`);
      out.push(e);
    }
    return;
  }
  const maxrecs = Math.floor((sb.blockSize - hdr) / 16);
  if (numrecs === 0 || numrecs > maxrecs) throw corrupt(what, `btree node ${fsb}: ${numrecs} records`);
  for (let i = 0; i < numrecs; i++) {
    const child = Number(b.readBigUInt64BE(hdr + maxrecs * 8 + i * 8));
    await walk(vol, ino, child, level - 1, out, state, what);
  }
}
