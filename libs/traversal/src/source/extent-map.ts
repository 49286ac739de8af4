import { promises as fs } from 'node:fs';
import { MAX_READ_LENGTH, type ImageRun } from '@strata/disk-image';
import { Errno, StrataError } from '@strata/errors';
import type { FileExtent, Filesystem } from '@strata/filesystem';
import type { ImageVolume } from './image-volume';
import { logicalVolumeOnDisk, type LvPiece } from './lv-map';

/**
 * Where a stretch of a layer file's bytes lies in the store: `length` bytes
 * at `fileOffset` of the store file `file` (a real path), zeros, or a run
 * with no plain place in the store (compressed, encrypted, inline, replayed
 * from a journal, behind a volume manager mapping not followed) that only
 * the layer's read() gives.
 */
export type ExtentRun =
  | { kind: 'data'; file: string; fileOffset: number; length: number }
  | { kind: 'zero'; length: number }
  | { kind: 'unmapped'; length: number; reason: string };

/** One map answers at most this many bytes; a caller maps a larger file window by window. */
export const MAX_EXTENT_MAP_LENGTH = MAX_READ_LENGTH;

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new StrataError(Errno.EINVAL, `extent map: bad range ${offset}+${length}`);
  }
}

function pushRun(out: ExtentRun[], run: ExtentRun): void {
  if (run.length <= 0) return;
  const last = out[out.length - 1];
  if (last && last.kind === run.kind) {
    if (last.kind === 'data' && run.kind === 'data' && last.file === run.file && last.fileOffset + last.length === run.fileOffset) {
      last.length += run.length;
      return;
    }
    if (last.kind === 'zero' || (last.kind === 'unmapped' && run.kind === 'unmapped' && last.reason === run.reason)) {
      last.length += run.length;
      return;
    }
  }
  out.push({ ...run });
}

/**
 * A `dir:` layer's file is itself: one data run over [offset, +length)
 * clipped to the file's size now. A path that is not valid UTF-8 cannot be
 * named by a string, so it is unmapped rather than misnamed.
 */
export async function dirExtentMap(realPath: Buffer, offset: number, length: number): Promise<ExtentRun[]> {
  checkRange(offset, length);
  let size: number;
  try {
    const st = await fs.lstat(realPath);
    if (st.isDirectory()) throw new StrataError(Errno.EISDIR, 'extent map of a directory');
    if (!st.isFile()) throw new StrataError(Errno.EINVAL, 'extent map of a file that is not a regular file');
    size = st.size;
  } catch (err) {
    throw StrataError.from(err, 'extent map');
  }
  const n = Math.max(0, Math.min(length, size - offset, MAX_EXTENT_MAP_LENGTH));
  if (n === 0) return [];
  const file = realPath.toString('utf8');
  if (!Buffer.from(file, 'utf8').equals(realPath)) return [{ kind: 'unmapped', length: n, reason: 'store path is not UTF-8' }];
  return [{ kind: 'data', file, fileOffset: offset, length: n }];
}

/** A logical volume's layout on its disk, found once per opened volume (a sealed image does not change). */
const lvLayouts = new WeakMap<ImageVolume, Promise<LvPiece[] | string>>();

function lvLayout(vol: ImageVolume): Promise<LvPiece[] | string> {
  let layout = lvLayouts.get(vol);
  if (!layout) {
    // An LV's label is "vg/lv"; neither name may contain a slash.
    const [vg, lv] = vol.label.split('/');
    layout = vg && lv ? logicalVolumeOnDisk(vol.image, vg, lv).catch((err: unknown) => StrataError.from(err).message) : Promise.resolve('not a logical volume');
    lvLayouts.set(vol, layout);
  }
  return layout;
}

/** [volumeOffset, +length) of a logical volume as disk stretches (undefined: a zero segment), or why not. */
async function volumeToDisk(vol: ImageVolume, volumeOffset: number, length: number): Promise<{ disk: number | undefined; length: number }[] | string> {
  if (vol.contiguous) return [{ disk: vol.offset + volumeOffset, length }];
  const layout = await lvLayout(vol);
  if (typeof layout === 'string') return layout;
  const out: { disk: number | undefined; length: number }[] = [];
  let pos = volumeOffset;
  const end = volumeOffset + length;
  for (const p of layout) {
    if (pos >= end) break;
    if (p.lvOffset + p.length <= pos) continue;
    if (p.lvOffset > pos) return `a gap in the logical volume's segments at ${pos}`;
    const n = Math.min(end, p.lvOffset + p.length) - pos;
    out.push({ disk: p.diskOffset === undefined ? undefined : p.diskOffset + (pos - p.lvOffset), length: n });
    pos += n;
  }
  return pos < end ? 'past the logical volume\'s segments' : out;
}

/**
 * An image layer's file: the filesystem's extents (volume offsets), moved
 * onto the disk by where the volume lies (a partition's start, the whole
 * disk, a logical volume's linear segments), then through the image chain's
 * own map to its files. A logical volume laid out otherwise is unmapped.
 */
export async function imageExtentMap(
  filesystem: Filesystem,
  handle: number,
  vol: ImageVolume,
  size: number,
  offset: number,
  length: number,
): Promise<ExtentRun[]> {
  checkRange(offset, length);
  const n = Math.max(0, Math.min(length, size - offset, MAX_EXTENT_MAP_LENGTH));
  if (!filesystem.fileExtents) {
    return n === 0 ? [] : [{ kind: 'unmapped', length: n, reason: `the ${filesystem.type} reader cannot map file extents` }];
  }
  const extents: FileExtent[] = await filesystem.fileExtents(handle, offset, Math.min(length, MAX_EXTENT_MAP_LENGTH));
  const out: ExtentRun[] = [];
  for (const e of extents) {
    if (e.kind !== 'data') {
      pushRun(out, e);
      continue;
    }
    if (!Number.isSafeInteger(e.volumeOffset) || e.volumeOffset < 0 || e.volumeOffset + e.length > vol.volume.size) {
      throw StrataError.corrupt(`extent map: ${e.length} bytes at volume offset ${e.volumeOffset} lie outside ${vol.describe}`);
    }
    const stretches = await volumeToDisk(vol, e.volumeOffset, e.length);
    if (typeof stretches === 'string') {
      pushRun(out, { kind: 'unmapped', length: e.length, reason: `logical volume: ${stretches}` });
      continue;
    }
    for (const d of stretches) {
      if (d.disk === undefined) {
        pushRun(out, { kind: 'zero', length: d.length });
        continue;
      }
      const runs: ImageRun[] = await vol.image.mapRange(d.disk, d.length);
      for (const r of runs) pushRun(out, r.kind === 'data' ? { kind: 'data', file: r.file.path, fileOffset: r.fileOffset, length: r.length } : r);
    }
  }
  return out;
}
