import type { FileExtent } from '@strata/filesystem';
import { mapBlocks, type FileContext } from './file-blocks';
import { InodeFlag, type InodeRecord } from './inode';

/** Logical blocks mapped per step: bounds the run list one mapBlocks call builds. */
const MAP_STEP_BLOCKS = 64 * 1024;

function push(out: FileExtent[], e: FileExtent): void {
  if (e.length <= 0) return;
  const last = out[out.length - 1];
  if (last && last.kind === e.kind) {
    if (last.kind === 'data' && e.kind === 'data' && last.volumeOffset + last.length === e.volumeOffset) {
      last.length += e.length;
      return;
    }
    if (last.kind === 'zero' || (last.kind === 'unmapped' && e.kind === 'unmapped' && last.reason === e.reason)) {
      last.length += e.length;
      return;
    }
  }
  out.push({ ...e });
}

/**
 * Where bytes [offset, offset+length) of a regular file (already clipped to
 * its size) lie on the volume. Holes and unwritten extents are zeros, as
 * read() gives them; a block the replayed journal replaced exists only in
 * memory, and inline or encrypted content has no plain place: unmapped.
 */
export async function fileExtentRuns(
  ctx: FileContext,
  rec: InodeRecord,
  replayed: ReadonlySet<number>,
  offset: number,
  length: number,
): Promise<FileExtent[]> {
  const out: FileExtent[] = [];
  if (length <= 0) return out;
  if (rec.stat.flags & InodeFlag.ENCRYPT) return [{ kind: 'unmapped', length, reason: 'encrypted' }];
  if (rec.stat.flags & InodeFlag.INLINE_DATA) return [{ kind: 'unmapped', length, reason: 'inline data' }];
  const bs = ctx.sb.blockSize;
  const end = offset + length;
  const lastBlock = Math.floor((end - 1) / bs);
  for (let first = Math.floor(offset / bs); first <= lastBlock; first += MAP_STEP_BLOCKS) {
    const stop = Math.min(lastBlock + 1, first + MAP_STEP_BLOCKS);
    let pos = Math.max(offset, first * bs);
    const stepEnd = Math.min(end, stop * bs);
    for (const run of await mapBlocks(ctx, rec, first, stop)) {
      const runStart = Math.max(pos, run.lblk * bs);
      const runEnd = Math.min(stepEnd, (run.lblk + run.count) * bs);
      if (runEnd <= runStart) continue;
      push(out, { kind: 'zero', length: runStart - pos });
      if (run.uninit) {
        push(out, { kind: 'zero', length: runEnd - runStart });
      } else {
        for (let at = runStart; at < runEnd; ) {
          const lblk = Math.floor(at / bs);
          const to = Math.min(runEnd, (lblk + 1) * bs);
          const pblk = run.pblk + (lblk - run.lblk);
          if (replayed.has(pblk)) push(out, { kind: 'unmapped', length: to - at, reason: 'journal replay' });
          else push(out, { kind: 'data', volumeOffset: pblk * bs + (at - lblk * bs), length: to - at });
          at = to;
        }
      }
      pos = runEnd;
    }
    push(out, { kind: 'zero', length: stepEnd - pos });
  }
  return out;
}
