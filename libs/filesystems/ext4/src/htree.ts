import { badChecksum, corrupt } from './corruption';
import { crc32c, crc32cZeros } from './crc32c';
import { DxHash, dirHash } from './dir-hash';

const DX_ENTRY = 8;
const DX_TAIL = 8;
const ROOT_INFO_OFFSET = 24;

/** The index is unusable (not a checksum failure): the kernel then searches the directory linearly. */
export class BadHtree extends Error {}

export interface HtreeDirectory {
  blockSize: number;
  /** metadata_csum: index blocks end in a dx_tail. */
  csum: boolean;
  csumSeed: number;
  /** large_dir: three index levels instead of two. */
  largeDir: boolean;
  hashUnsignedOffset: number;
  hashSeed: readonly number[];
  what: string;
  /** Logical directory block `lblk`, raw (undefined for a hole). */
  readBlock(lblk: number): Promise<Buffer | undefined>;
  /** Searches one leaf block (verifying it); the inode number when found. */
  searchLeaf(lblk: number, block: Buffer): number | undefined;
  onChecksumError(lblk: number, reason: string): void;
  /** Index blocks whose checksum already passed (lookups sharing one directory verify each once). */
  verified?: Set<number>;
}

interface Frame {
  buf: Buffer;
  /** Byte offset of the count/limit pair, which is also entry 0. */
  base: number;
  count: number;
  at: number;
}

function entryHash(f: Frame, i: number): number {
  return i === 0 ? 0 : f.buf.readUInt32LE(f.base + i * DX_ENTRY);
}
function entryBlock(f: Frame, i: number): number {
  return f.buf.readUInt32LE(f.base + i * DX_ENTRY + 4) & 0x0fffffff;
}

function verifyDxTail(dir: HtreeDirectory, buf: Buffer, base: number, limit: number, count: number): string | undefined {
  const tail = base + limit * DX_ENTRY;
  if (tail + DX_TAIL > dir.blockSize) return 'no room for the index checksum';
  const want = buf.readUInt32LE(tail + 4);
  let c = crc32c(dir.csumSeed, buf, 0, base + count * DX_ENTRY);
  c = crc32c(c, buf, tail, tail + 4);
  c = crc32cZeros(c, 4);
  return want === c ? undefined : `index checksum mismatch (stored 0x${want.toString(16)}, computed 0x${c.toString(16)})`;
}

/**
 * Where an index block's count/limit pair is, as get_dx_countlimit finds it
 * (undefined when the block does not look like an index block at all).
 */
function countLimitOffset(buf: Buffer, bs: number, root: boolean): number | undefined {
  if (root) {
    if (buf.readUInt16LE(4) !== 12 || buf.readUInt16LE(12 + 4) !== bs - 12) return undefined;
    return buf.readUInt8(ROOT_INFO_OFFSET + 5) === 8 ? ROOT_INFO_OFFSET + 8 : undefined;
  }
  return buf.readUInt16LE(4) === (bs >= 65536 ? 0 : bs) ? 8 : undefined;
}

async function readIndex(dir: HtreeDirectory, lblk: number, root: boolean): Promise<{ frame: Frame; levels: number; hashVersion: number }> {
  const buf = await dir.readBlock(lblk);
  if (!buf) throw new BadHtree(`index block ${lblk} is a hole`);
  const bs = dir.blockSize;
  // ext4_read_dirblock verifies the checksum before dx_probe looks at the
  // index: a block that fails it is EBADMSG (the listing and lookups fail),
  // not an index to ignore.
  const at = countLimitOffset(buf, bs, root);
  if (dir.csum && at !== undefined && !dir.verified?.has(lblk)) {
    const limit = buf.readUInt16LE(at);
    const count = buf.readUInt16LE(at + 2);
    const reason = count > limit ? `index count ${count} exceeds its limit ${limit}` : verifyDxTail(dir, buf, at, limit, count);
    if (reason) {
      dir.onChecksumError(lblk, reason);
      throw badChecksum(dir.what, `index block ${lblk}: ${reason}`);
    }
    dir.verified?.add(lblk);
  }
  let base: number;
  let levels = 0;
  let hashVersion = 0;
  if (root) {
    if (buf.readUInt16LE(4) !== 12 || buf.readUInt16LE(12 + 4) !== bs - 12) throw new BadHtree('root "." / ".." records are malformed');
    const reserved = buf.readUInt32LE(ROOT_INFO_OFFSET);
    hashVersion = buf.readUInt8(ROOT_INFO_OFFSET + 4);
    const infoLength = buf.readUInt8(ROOT_INFO_OFFSET + 5);
    levels = buf.readUInt8(ROOT_INFO_OFFSET + 6);
    const unusedFlags = buf.readUInt8(ROOT_INFO_OFFSET + 7);
    if (reserved !== 0 || infoLength !== 8) throw new BadHtree(`root info is malformed (length ${infoLength})`);
    if (hashVersion !== DxHash.LEGACY && hashVersion !== DxHash.HALF_MD4 && hashVersion !== DxHash.TEA) {
      throw new BadHtree(`unsupported hash version ${hashVersion}`);
    }
    if (unusedFlags & 1) throw new BadHtree('unimplemented index flags');
    if (levels >= (dir.largeDir ? 3 : 2)) throw new BadHtree(`${levels} indirect levels`);
    base = ROOT_INFO_OFFSET + infoLength;
  } else {
    if (buf.readUInt32LE(0) !== 0 || buf.readUInt16LE(4) !== (bs >= 65536 ? 0 : bs)) throw new BadHtree(`index block ${lblk} is malformed`);
    base = 8;
  }
  const limit = buf.readUInt16LE(base);
  const count = buf.readUInt16LE(base + 2);
  const expected = Math.floor((bs - base - (dir.csum ? DX_TAIL : 0)) / DX_ENTRY);
  if (limit !== expected) throw new BadHtree(`index block ${lblk} has limit ${limit}, expected ${expected}`);
  if (count === 0 || count > limit) throw new BadHtree(`index block ${lblk} has count ${count}`);
  return { frame: { buf, base, count, at: 0 }, levels, hashVersion };
}

/** Binary search: the last entry whose hash is <= `hash` (entry 0 covers everything below entry 1). */
function findEntry(f: Frame, hash: number): number {
  let lo = 1;
  let hi = f.count - 1;
  while (lo <= hi) {
    const mid = lo + ((hi - lo) >> 1);
    if (entryHash(f, mid) > hash) hi = mid - 1;
    else lo = mid + 1;
  }
  return lo - 1;
}

/**
 * Looks a name up by descending the hash index: the root, at most two
 * interior levels, then one leaf (plus the following leaves while they
 * continue the same hash after a split). Never reads the whole directory.
 */
export async function htreeLookup(dir: HtreeDirectory, name: Buffer): Promise<number | undefined> {
  const root = await readIndex(dir, 0, true);
  const version = root.hashVersion <= DxHash.TEA ? root.hashVersion + dir.hashUnsignedOffset : root.hashVersion;
  const hash = dirHash(name, version, dir.hashSeed);
  const frames: Frame[] = [root.frame];
  const visited = new Set<number>([0]);
  for (;;) {
    const f = frames[frames.length - 1];
    f.at = findEntry(f, hash);
    if (frames.length > root.levels) break;
    const child = entryBlock(f, f.at);
    if (visited.has(child)) throw new BadHtree(`index loops back to block ${child}`);
    visited.add(child);
    frames.push((await readIndex(dir, child, false)).frame);
  }
  for (let leaves = 0; ; leaves++) {
    const deepest = frames[frames.length - 1];
    const lblk = entryBlock(deepest, deepest.at);
    if (visited.has(lblk)) throw new BadHtree(`leaf ${lblk} is also an index block`);
    const leaf = await dir.readBlock(lblk);
    // ext4_read_dirblock: a leaf the index names must exist.
    if (!leaf) throw corrupt(dir.what, `htree leaf block ${lblk} is a hole`);
    const ino = dir.searchLeaf(lblk, leaf);
    if (ino !== undefined) return ino;
    // Step to the next leaf only while it continues this hash (a collision run split across blocks).
    let level = frames.length - 1;
    while (level >= 0 && frames[level].at + 1 >= frames[level].count) level--;
    if (level < 0 || leaves > 64) return undefined;
    frames[level].at++;
    const nextHash = entryHash(frames[level], frames[level].at);
    if (((nextHash & ~1) >>> 0) !== hash) return undefined;
    for (let l = level + 1; l < frames.length; l++) {
      const child = entryBlock(frames[l - 1], frames[l - 1].at);
      frames[l] = (await readIndex(dir, child, false)).frame;
      frames[l].at = 0;
    }
  }
}

/** Index blocks visited while listing, at most (a directory of 2^32 blocks has fewer). */
const MAX_INDEX_BLOCKS = 1 << 20;

/**
 * The leaf blocks the index leads to, in hash order (the order the kernel's
 * hashed readdir reads them), each once. Structural damage is BadHtree (the
 * caller then reads the directory linearly, as ext4_readdir does); a bad
 * index checksum is EBADMSG.
 */
export async function htreeLeaves(dir: HtreeDirectory): Promise<number[]> {
  const root = await readIndex(dir, 0, true);
  const leaves: number[] = [];
  const seen = new Set<number>([0]);
  const visit = async (f: Frame, level: number): Promise<void> => {
    for (let i = 0; i < f.count; i++) {
      const child = entryBlock(f, i);
      if (level < root.levels) {
        if (seen.has(child)) throw new BadHtree(`index loops back to block ${child}`);
        seen.add(child);
        if (seen.size > MAX_INDEX_BLOCKS) throw new BadHtree('index has too many blocks');
        await visit((await readIndex(dir, child, false)).frame, level + 1);
      } else if (!seen.has(child)) {
        seen.add(child);
        leaves.push(child);
      }
    }
  };
  await visit(root.frame, 0);
  return leaves;
}
