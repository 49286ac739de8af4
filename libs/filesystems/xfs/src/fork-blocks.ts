import { corrupt } from './errors';
import { Extent, findExtent } from './extent';
import { MAX_SOURCE_READ } from './metadata-reader';
import type { Volume } from './volume';

/**
 * `count` blocks of a fork from file block `fb`, every one mapped and
 * written (directory, attribute and symlink blocks), through the metadata
 * cache: one cached buffer per extent piece.
 */
export async function readMetaBlocks(vol: Volume, extents: readonly Extent[], fb: number, count: number, what: string): Promise<Buffer> {
  const bs = vol.sb.blockSize;
  const parts: Buffer[] = [];
  let at = fb;
  while (at < fb + count) {
    const i = findExtent(extents, at);
    const e = i >= 0 ? extents[i] : undefined;
    if (!e || at >= e.offset + e.count) throw corrupt(what, `block ${at} is a hole`);
    if (e.unwritten) throw corrupt(what, `block ${at} is unwritten`);
    const n = Math.min(e.offset + e.count, fb + count) - at;
    parts.push((await vol.reader.metadata((e.block + (at - e.offset)) * bs, n * bs, what)).data);
    at += n;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/** Whether file block `fb` is mapped at all. */
export function isMapped(extents: readonly Extent[], fb: number): boolean {
  const i = findExtent(extents, fb);
  return i >= 0 && fb < extents[i].offset + extents[i].count;
}

/**
 * File bytes [offset, offset+length): holes and unwritten extents are
 * zeros; each contiguous written piece is one source read (in chunks of
 * at most 8 MiB), uncached.
 */
export async function readFileRange(vol: Volume, extents: readonly Extent[], offset: number, length: number, what: string): Promise<Buffer> {
  const out = Buffer.alloc(length);
  if (length === 0) return out;
  const bs = vol.sb.blockSize;
  const end = offset + length;
  let i = Math.max(0, findExtent(extents, Math.floor(offset / bs)));
  for (; i < extents.length; i++) {
    const e = extents[i];
    const eStart = e.offset * bs;
    const eEnd = eStart + e.count * bs;
    if (eStart >= end) break;
    if (eEnd <= offset || e.unwritten) continue;
    const from = Math.max(offset, eStart);
    const to = Math.min(end, eEnd);
    const disk = e.block * bs + (from - eStart);
    for (let done = 0; done < to - from; ) {
      const n = Math.min(MAX_SOURCE_READ, to - from - done);
      const data = await vol.reader.data(disk + done, n, what);
      data.copy(out, from - offset + done);
      done += n;
    }
  }
  return out;
}
