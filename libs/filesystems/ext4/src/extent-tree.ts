import { BlockReader } from './block-reader';
import { badChecksum, corrupt } from './corruption';
import { crc32c } from './crc32c';
import type { BlockRun } from './file-blocks';
import type { InodeRecord } from './inode';
import { Superblock, hasMetadataCsum } from './superblock';

const EXTENT_MAGIC = 0xf30a;
export const MAX_EXTENT_DEPTH = 5;
const INIT_MAX_LEN = 32768;
const HEADER = 12;
const ENTRY = 12;

interface Header {
  entries: number;
  max: number;
  depth: number;
}

export interface ExtentContext {
  sb: Superblock;
  reader: BlockReader;
  inode: InodeRecord;
  onChecksumError: (block: number, reason: string) => void;
}

function parseHeader(buf: Buffer, capacity: number, what: string): Header {
  if (buf.readUInt16LE(0) !== EXTENT_MAGIC) throw corrupt(what, 'bad extent header magic');
  const entries = buf.readUInt16LE(2);
  const max = buf.readUInt16LE(4);
  const depth = buf.readUInt16LE(6);
  if (max > capacity) throw corrupt(what, `eh_max ${max} exceeds the room for ${capacity}`);
  if (entries > max) throw corrupt(what, `eh_entries ${entries} exceeds eh_max ${max}`);
  if (depth > MAX_EXTENT_DEPTH) throw corrupt(what, `extent depth ${depth} exceeds ${MAX_EXTENT_DEPTH}`);
  if (entries === 0 && depth > 0) throw corrupt(what, 'index node without entries');
  return { entries, max, depth };
}

/**
 * Checks the root in i_block as the kernel's iget does (ext4_ext_check_inode
 * and ext4_valid_extent_entries): the header, then every entry of the root —
 * an extent of length 0, out of order or outside the filesystem, or an index
 * pointing outside it, makes the inode unreadable, not only its data.
 */
export function checkExtentRoot(sb: Superblock, inode: InodeRecord): void {
  const what = `extent root of inode ${inode.stat.ino}`;
  const buf = inode.iBlock;
  const header = parseHeader(buf, (60 - HEADER) / ENTRY, what);
  let prevEnd = 0;
  for (let i = 0; i < header.entries; i++) {
    const off = HEADER + i * ENTRY;
    const lblk = buf.readUInt32LE(off);
    if (header.depth === 0) {
      const rawLen = buf.readUInt16LE(off + 4);
      const len = rawLen > INIT_MAX_LEN ? rawLen - INIT_MAX_LEN : rawLen;
      const pblk = buf.readUInt16LE(off + 6) * 0x1_0000_0000 + buf.readUInt32LE(off + 8);
      if (len === 0 || lblk < prevEnd || lblk + len > 0x1_0000_0000 || !blockValid(sb, pblk, len)) {
        throw corrupt(what, `extent ${i} (logical ${lblk}, blocks ${pblk}+${len}) is invalid`);
      }
      prevEnd = lblk + len;
    } else {
      const child = buf.readUInt16LE(off + 8) * 0x1_0000_0000 + buf.readUInt32LE(off + 4);
      if ((i > 0 && lblk < prevEnd) || !blockValid(sb, child, 1)) throw corrupt(what, `index entry ${i} (logical ${lblk}, block ${child}) is invalid`);
      prevEnd = lblk + 1;
    }
  }
}

function blockValid(sb: Superblock, start: number, count: number): boolean {
  return start > sb.firstDataBlock && start + count <= sb.blocksCount;
}

async function readNode(ctx: ExtentContext, block: number, depth: number, firstLblk: number): Promise<{ buf: Buffer; header: Header }> {
  const what = `extent block ${block} of inode ${ctx.inode.stat.ino}`;
  const mb = await ctx.reader.metadata(block, what);
  const header = parseHeader(mb.data, Math.floor((ctx.sb.blockSize - HEADER) / ENTRY), what);
  if (header.depth !== depth) throw corrupt(what, `depth ${header.depth} where ${depth} was expected`);
  if (header.entries > 0 && mb.data.readUInt32LE(HEADER) !== firstLblk) {
    throw corrupt(what, `first entry starts at block ${mb.data.readUInt32LE(HEADER)}, index says ${firstLblk}`);
  }
  if (hasMetadataCsum(ctx.sb) && !mb.verified.has('extent')) {
    const tail = HEADER + ENTRY * header.max;
    if (tail + 4 > ctx.sb.blockSize) throw corrupt(what, 'no room for the checksum');
    const want = mb.data.readUInt32LE(tail);
    const got = crc32c(ctx.inode.csumSeed, mb.data, 0, tail);
    if (want !== got) {
      const reason = `checksum mismatch (stored 0x${want.toString(16)}, computed 0x${got.toString(16)})`;
      ctx.onChecksumError(block, reason);
      throw badChecksum(what, reason);
    }
    mb.verified.add('extent');
  }
  return { buf: mb.data, header };
}

/**
 * Maps logical blocks [start, end) through the extent tree, appending the
 * mapped pieces in logical order (holes are left for the caller to fill).
 * Depth strictly decreases on the way down, so a looping tree cannot recurse
 * forever; an index only descends into children overlapping the range.
 */
async function walk(ctx: ExtentContext, buf: Buffer, header: Header, start: number, end: number, out: BlockRun[], what: string): Promise<void> {
  const n = header.entries;
  if (header.depth === 0) {
    let prevEnd = 0;
    for (let i = 0; i < n; i++) {
      const off = HEADER + i * ENTRY;
      const lblk = buf.readUInt32LE(off);
      const rawLen = buf.readUInt16LE(off + 4);
      const uninit = rawLen > INIT_MAX_LEN;
      const len = uninit ? rawLen - INIT_MAX_LEN : rawLen;
      const pblk = buf.readUInt16LE(off + 6) * 0x1_0000_0000 + buf.readUInt32LE(off + 8);
      if (len === 0) throw corrupt(what, `extent ${i} has length 0`);
      if (lblk < prevEnd) throw corrupt(what, `extent ${i} overlaps or is out of order`);
      if (lblk + len > 0x1_0000_0000) throw corrupt(what, `extent ${i} runs past the 2^32-block file limit`);
      if (!blockValid(ctx.sb, pblk, len)) throw corrupt(what, `extent ${i} (blocks ${pblk}+${len}) points outside the filesystem`);
      prevEnd = lblk + len;
      const s = Math.max(lblk, start);
      const e = Math.min(lblk + len, end);
      if (s < e) out.push({ lblk: s, count: e - s, pblk: pblk + (s - lblk), uninit });
    }
    return;
  }
  const lblks: number[] = [];
  for (let i = 0; i < n; i++) {
    const lblk = buf.readUInt32LE(HEADER + i * ENTRY);
    if (i > 0 && lblk <= lblks[i - 1]) throw corrupt(what, `index entry ${i} is out of order`);
    lblks.push(lblk);
  }
  // The last index entry whose range starts at or before `start`.
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lblks[mid] <= start) lo = mid;
    else hi = mid - 1;
  }
  for (let i = lo; i < n && lblks[i] < end; i++) {
    const off = HEADER + i * ENTRY;
    const child = buf.readUInt16LE(off + 8) * 0x1_0000_0000 + buf.readUInt32LE(off + 4);
    if (!blockValid(ctx.sb, child, 1)) throw corrupt(what, `index entry ${i} points to block ${child}, outside the filesystem`);
    const childEnd = i + 1 < n ? lblks[i + 1] : 0x1_0000_0000;
    const node = await readNode(ctx, child, header.depth - 1, lblks[i]);
    await walk(ctx, node.buf, node.header, Math.max(start, lblks[i]), Math.min(end, childEnd), out, `extent block ${child} of inode ${ctx.inode.stat.ino}`);
  }
}

export async function mapExtents(ctx: ExtentContext, start: number, end: number): Promise<BlockRun[]> {
  const what = `extent root of inode ${ctx.inode.stat.ino}`;
  const header = parseHeader(ctx.inode.iBlock, (60 - HEADER) / ENTRY, what);
  const out: BlockRun[] = [];
  await walk(ctx, ctx.inode.iBlock, header, start, Math.min(end, 0x1_0000_0000), out, what);
  return out;
}
