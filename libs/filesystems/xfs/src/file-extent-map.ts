import type { FileExtent } from '@strata/filesystem';
import { type Extent, findExtent } from './extent';

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
 * Where bytes [offset, offset+length) of a file (already clipped to its
 * size) lie on the volume, from its data fork's extents: holes and unwritten
 * extents are zeros, as readFileRange reads them; a block whose bytes log
 * recovery replaced in memory (`replaced`) has no place on the volume.
 */
export function fileExtentRuns(
  extents: readonly Extent[],
  blockSize: number,
  replaced: (offset: number, length: number) => boolean,
  offset: number,
  length: number,
): FileExtent[] {
  const out: FileExtent[] = [];
  if (length <= 0) return out;
  const end = offset + length;
  let pos = offset;
  for (let i = Math.max(0, findExtent(extents, Math.floor(offset / blockSize))); i < extents.length && pos < end; i++) {
    const e = extents[i];
    const eStart = e.offset * blockSize;
    const eEnd = eStart + e.count * blockSize;
    if (eStart >= end) break;
    if (eEnd <= pos) continue;
    const from = Math.max(pos, eStart);
    const to = Math.min(end, eEnd);
    push(out, { kind: 'zero', length: from - pos });
    if (e.unwritten) {
      push(out, { kind: 'zero', length: to - from });
    } else {
      for (let at = from; at < to; ) {
        const fb = Math.floor(at / blockSize);
        const stop = Math.min(to, (fb + 1) * blockSize);
        const disk = e.block * blockSize + (at - eStart);
        if (replaced(disk, stop - at)) push(out, { kind: 'unmapped', length: stop - at, reason: 'log replay' });
        else push(out, { kind: 'data', volumeOffset: disk, length: stop - at });
        at = stop;
      }
    }
    pos = to;
  }
  push(out, { kind: 'zero', length: end - pos });
  return out;
}
