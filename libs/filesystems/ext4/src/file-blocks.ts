import { BlockReader } from './block-reader';
import { ExtentContext, mapExtents } from './extent-tree';
import { mapIndirect } from './block-map';
import { InodeFlag, InodeRecord } from './inode';
import { Superblock } from './superblock';

/** A piece of a file's logical block space that is backed by consecutive physical blocks. */
export interface BlockRun {
  lblk: number;
  count: number;
  pblk: number;
  /** An unwritten (preallocated) extent: reads as zeros. */
  uninit: boolean;
}

export interface FileContext {
  sb: Superblock;
  reader: BlockReader;
  onChecksumError: (ino: number, block: number, reason: string) => void;
}

/** Largest run read from the source at once for one file (bounds the buffer a single run can ask for). */
const MAX_RUN_BLOCKS_BYTES = 8 * 1024 * 1024;

/** Maps [start, end) to mapped runs in logical order, merging physically contiguous neighbours. */
export async function mapBlocks(ctx: FileContext, inode: InodeRecord, start: number, end: number): Promise<BlockRun[]> {
  let runs: BlockRun[];
  if (inode.stat.flags & InodeFlag.EXTENTS) {
    const ectx: ExtentContext = {
      sb: ctx.sb,
      reader: ctx.reader,
      inode,
      onChecksumError: (block, reason) => ctx.onChecksumError(inode.stat.ino, block, reason),
    };
    runs = await mapExtents(ectx, start, end);
  } else {
    runs = await mapIndirect(ctx.sb, ctx.reader, inode, start, end);
  }
  const merged: BlockRun[] = [];
  for (const r of runs) {
    const last = merged[merged.length - 1];
    if (last && last.lblk + last.count === r.lblk && last.pblk + last.count === r.pblk && last.uninit === r.uninit) {
      last.count += r.count;
    } else {
      merged.push({ ...r });
    }
  }
  return merged;
}

/**
 * Reads bytes [offset, offset+length) of a block-mapped file; holes and
 * unwritten extents are zeros. Each mapped run is read straight into the
 * answer (no buffer per run, no copy, when the source reads into buffers);
 * only the bytes no run covers are zeroed.
 */
export async function readMapped(ctx: FileContext, inode: InodeRecord, offset: number, length: number): Promise<Buffer> {
  const bs = ctx.sb.blockSize;
  if (length === 0) return Buffer.alloc(0);
  const first = Math.floor(offset / bs);
  const last = Math.floor((offset + length - 1) / bs);
  const runs = await mapBlocks(ctx, inode, first, last + 1);
  const maxBlocks = Math.max(1, Math.floor(MAX_RUN_BLOCKS_BYTES / bs));
  // Every byte is either read into or zeroed below: `zeroed` is where the zeroing has reached.
  const out = Buffer.allocUnsafe(length);
  let zeroed = 0;
  for (const run of runs) {
    if (run.uninit) continue;
    for (let done = 0; done < run.count; done += maxBlocks) {
      const count = Math.min(maxBlocks, run.count - done);
      const runStart = (run.lblk + done) * bs;
      const from = Math.max(runStart, offset);
      const to = Math.min(runStart + count * bs, offset + length);
      if (from >= to) continue;
      if (from - offset > zeroed) out.fill(0, zeroed, from - offset);
      await ctx.reader.dataInto(out, from - offset, run.pblk + done, count, from - runStart, to - from, `data of inode ${inode.stat.ino}`);
      zeroed = Math.max(zeroed, to - offset);
    }
  }
  if (zeroed < length) out.fill(0, zeroed);
  return out;
}

/**
 * Directory blocks: every mapped block, unwritten extents included. The
 * kernel reads directories with ext4_bread, which maps an unwritten extent
 * like a written one and reads the block (only regular files read it as
 * zeros); a hole is skipped.
 */
export async function writtenBlocks(ctx: FileContext, inode: InodeRecord, start: number, end: number): Promise<BlockRun[]> {
  return mapBlocks(ctx, inode, start, end);
}
