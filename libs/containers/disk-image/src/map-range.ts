import { StoreFile, type FileReader, type ImageFile } from './store-file';
import type { Layer } from './layer';
import { ReplayedFile, REPLAY_SECTOR } from './vhdx/log';

/**
 * Where a stretch of guest bytes lies, as a layer sees it: in a file of the
 * chain, zeros, or somewhere a plain pread of a store file cannot reach
 * (compressed, replayed from a log): the caller reads those through the image.
 */
export type LayerRun =
  | { kind: 'data'; file: StoreFile; fileOffset: number; length: number }
  | { kind: 'zero'; length: number }
  | { kind: 'unmapped'; length: number; reason: string };

/** A run of DiskImage.mapRange: `file` is one of the image's `files`. */
export type ImageRun =
  | { kind: 'data'; file: ImageFile; fileOffset: number; length: number }
  | { kind: 'zero'; length: number }
  | { kind: 'unmapped'; length: number; reason: string };

/** Appends a run, merging it into the last one when it continues it (same file and next byte, or same kind and reason). */
export function pushRun(out: LayerRun[], run: LayerRun): void {
  if (run.length <= 0) return;
  const last = out[out.length - 1];
  if (last && last.kind === run.kind) {
    if (last.kind === 'zero') {
      last.length += run.length;
      return;
    }
    if (last.kind === 'unmapped' && run.kind === 'unmapped' && last.reason === run.reason) {
      last.length += run.length;
      return;
    }
    if (last.kind === 'data' && run.kind === 'data' && last.file === run.file && last.fileOffset + last.length === run.fileOffset) {
      last.length += run.length;
      return;
    }
  }
  out.push({ ...run });
}

/**
 * Maps [offset, +length) of a parent (or an extent) layer: past its end
 * (a parent smaller than its child) reads as zeros, as readParent does; no
 * layer at all is zeros; a layer that cannot map is one unmapped run.
 */
export async function mapLayer(layer: Layer | undefined, offset: number, length: number, out: LayerRun[]): Promise<void> {
  const inside = layer ? Math.max(0, Math.min(length, layer.size - offset)) : 0;
  if (inside > 0 && layer) {
    if (layer.mapRange) await layer.mapRange(offset, inside, out);
    else pushRun(out, { kind: 'unmapped', length: inside, reason: 'this image format cannot say where its bytes lie' });
  }
  pushRun(out, { kind: 'zero', length: length - inside });
}

/**
 * Maps [position, +length) of an image file as its reader sees it: a store
 * file is itself; a VHDX with a replayed log is itself except the sectors
 * the log replaced (and what lies past the file's real end), which exist
 * only in memory.
 */
export function mapFile(reader: FileReader, position: number, length: number, out: LayerRun[]): void {
  if (reader instanceof StoreFile) {
    pushRun(out, { kind: 'data', file: reader, fileOffset: position, length });
    return;
  }
  if (reader instanceof ReplayedFile && reader.base instanceof StoreFile) {
    const base = reader.base;
    const end = position + length;
    for (let at = position; at < end; ) {
      const sector = Math.floor(at / REPLAY_SECTOR);
      const to = Math.min(end, (sector + 1) * REPLAY_SECTOR);
      if (reader.replaced(sector) || to > base.size) pushRun(out, { kind: 'unmapped', length: to - at, reason: 'VHDX log replay' });
      else pushRun(out, { kind: 'data', file: base, fileOffset: at, length: to - at });
      at = to;
    }
    return;
  }
  pushRun(out, { kind: 'unmapped', length, reason: 'image file read through an in-memory view' });
}
