import { Errno, StrataError } from '@strata/errors';
import { Attribute, AttrFlag } from './attribute';
import { corrupt, unsupported } from './errors';
import { decompressLznt1 } from './lznt1';
import { HOLE, Run, findRun } from './runlist';
import { Volume, readBytes } from './volume';

/** An attribute's value as one stream: resident bytes, or all its non-resident extents merged. */
export interface AttrData {
  type: number;
  name: Buffer;
  flags: number;
  resident?: Buffer;
  dataSize: number;
  /** Bytes st_blocks counts, as ntfs-3g sizes them. */
  allocatedSize: number;
  /** The allocated size as recorded (ntfs-3g sizes a directory index by it). */
  rawAllocatedSize: number;
  /** Non-resident only. */
  initializedSize: number;
  compressionUnit: number;
  runs: Run[];
  what: string;
  /** Why the runs could not be decoded: sizes still stand (stat works), reads fail with this. */
  error?: StrataError;
}

/** Merges the extents of one attribute (sorted by lowest VCN; sizes from the first extent). */
export function mergeExtents(extents: Attribute[], what: string): AttrData {
  const first = extents[0];
  if (first.value) {
    return { type: first.type, name: first.name, flags: first.flags, resident: first.value, dataSize: first.value.length, allocatedSize: (first.value.length + 7) & ~7, rawAllocatedSize: (first.value.length + 7) & ~7, initializedSize: first.value.length, compressionUnit: 0, runs: [], what };
  }
  const sorted = extents.filter((e) => e.nonResident).sort((a, b) => a.nonResident!.lowestVcn - b.nonResident!.lowestVcn);
  const headAttr = sorted[0];
  const head = headAttr.nonResident!;
  if (head.lowestVcn !== 0) throw corrupt(what, `first extent starts at VCN ${head.lowestVcn}`);
  const runs: Run[] = [];
  let next = 0;
  let error: StrataError | undefined;
  for (const e of sorted) {
    const nr = e.nonResident!;
    error ??= nr.runsError;
    if (nr.lowestVcn !== next) error ??= corrupt(what, `extent starts at VCN ${nr.lowestVcn}, expected ${next}`);
    for (const r of nr.runs) runs.push(r);
    next = nr.highestVcn + 1;
  }
  const sparseOrCompressed = (headAttr.flags & (AttrFlag.COMPRESSION_MASK | AttrFlag.SPARSE)) !== 0;
  const allocatedSize = sparseOrCompressed && head.compressedSize !== undefined ? head.compressedSize : head.allocatedSize;
  if (head.dataSize > head.allocatedSize || head.initializedSize > head.allocatedSize) {
    throw corrupt(what, `data size ${head.dataSize} / initialized ${head.initializedSize} beyond the allocated ${head.allocatedSize}`);
  }
  return { type: headAttr.type, name: headAttr.name, flags: headAttr.flags, dataSize: head.dataSize, allocatedSize, rawAllocatedSize: head.allocatedSize, initializedSize: head.initializedSize, compressionUnit: head.compressionUnit, runs, what, error };
}

/** NTFS writes 64 KiB compression units; one over 1 MiB is refused rather than allocated. */
const MAX_CB = 1 << 20;

/**
 * Reads up to `length` bytes at `pos` (fewer at the end of the data): holes and
 * anything past the initialized size are zeros; compressed units are
 * decompressed; encrypted non-resident data is EACCES, as ntfs-3g answers
 * without efs_raw.
 */
export async function readAttr(vol: Volume, a: AttrData, pos: number, length: number): Promise<Buffer> {
  const end = Math.min(pos + length, a.dataSize);
  if (pos >= end) return Buffer.alloc(0);
  if (a.resident) return Buffer.from(a.resident.subarray(pos, end));
  if (a.error) throw a.error;
  const compression = a.flags & AttrFlag.COMPRESSION_MASK;
  if (compression !== 0 && compression !== AttrFlag.COMPRESSED) throw unsupported(`compression method 0x${compression.toString(16)} of ${a.what}`);
  if (a.flags & AttrFlag.ENCRYPTED) throw new StrataError(Errno.EACCES, `ntfs: ${a.what} is encrypted (EFS): ntfs-3g denies reading it`);
  const out = Buffer.alloc(end - pos);
  const initEnd = Math.min(end, a.initializedSize);
  if (pos >= initEnd) return out;
  if (compression) await readCompressed(vol, a, pos, initEnd, out);
  else await readPlain(vol, a, pos, initEnd, out, 0);
  return out;
}

/** Copies [pos, end) of the stream into out at outAt, reading each run's part in one source read. */
async function readPlain(vol: Volume, a: AttrData, pos: number, end: number, out: Buffer, outAt: number): Promise<void> {
  const cs = vol.boot.clusterSize;
  let at = pos;
  while (at < end) {
    const vcn = Math.floor(at / cs);
    const i = findRun(a.runs, vcn);
    if (i < 0) throw corrupt(a.what, `no run maps VCN ${vcn}`);
    const r = a.runs[i];
    const runEnd = Math.min(end, (r.vcn + r.length) * cs);
    const n = runEnd - at;
    if (r.lcn !== HOLE) {
      const data = await readBytes(vol, r.lcn * cs + (at - r.vcn * cs), n, a.what);
      data.copy(out, outAt + (at - pos));
    }
    at = runEnd;
  }
}

async function readCompressed(vol: Volume, a: AttrData, pos: number, end: number, out: Buffer): Promise<void> {
  const cs = vol.boot.clusterSize;
  const cbClusters = 2 ** a.compressionUnit;
  const cbSize = cbClusters * cs;
  if (a.compressionUnit === 0 || cbSize > MAX_CB) throw unsupported(`compression unit of ${cbClusters} clusters of ${cs} bytes in ${a.what}`);
  for (let cbStart = Math.floor(pos / cbSize) * cbSize; cbStart < end; cbStart += cbSize) {
    const vcn = cbStart / cs;
    const from = Math.max(pos, cbStart);
    const to = Math.min(end, cbStart + cbSize);
    const i = findRun(a.runs, vcn);
    if (i < 0) throw corrupt(a.what, `no run maps VCN ${vcn}`);
    if (a.runs[i].lcn === HOLE) continue; // a sparse unit reads as zeros
    // A unit whose clusters are all allocated is stored as is; one ending in a hole is compressed.
    let allocated = 0;
    let compressed = false;
    for (let k = i; k < a.runs.length && a.runs[k].vcn < vcn + cbClusters; k++) {
      const r = a.runs[k];
      const n = Math.min(r.vcn + r.length, vcn + cbClusters) - Math.max(r.vcn, vcn);
      if (r.lcn === HOLE) compressed = true;
      else allocated += n;
    }
    if (allocated < cbClusters) compressed = true;
    if (!compressed) {
      await readPlain(vol, a, from, to, out, from - pos);
      continue;
    }
    const raw = Buffer.alloc(allocated * cs);
    let filled = 0;
    for (let k = i; k < a.runs.length && a.runs[k].vcn < vcn + cbClusters; k++) {
      const r = a.runs[k];
      if (r.lcn === HOLE) continue;
      const s = Math.max(r.vcn, vcn);
      const n = Math.min(r.vcn + r.length, vcn + cbClusters) - s;
      const data = await readBytes(vol, (r.lcn + (s - r.vcn)) * cs, n * cs, a.what);
      data.copy(raw, filled);
      filled += data.length;
    }
    const plain = decompressLznt1(raw, cbSize, `${a.what} compression unit at VCN ${vcn}`);
    plain.copy(out, from - pos, from - cbStart, to - cbStart);
  }
}
