import * as path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import { checkReadRange, checkTarget, type ByteSource } from './byte-source';
import { BoundedCache, type CacheCounters } from './bounded-cache';
import { MAX_CHAIN_LENGTH, MAX_EXTENT_FILES, namedPath, type ChainState, type FormatContext, type OpenedLayer } from './chain';
import { detectFormatOf, IMAGE_FORMATS, wrongFormat, type DetectedFormat, type ImageFormat } from './format/detect';
import type { GuestRange, Layer } from './layer';
import { mapLayer, type ImageRun, type LayerRun } from './map-range';
import { openQcow2 } from './qcow2/open';
import { Qcow2Layer } from './qcow2/image';
import { findSnapshot, listSnapshotNames, type ImageSnapshot, type Qcow2Snapshot } from './qcow2/snapshots';
import { RawLayer } from './raw/raw-image';
import { StoreFile, realStoreRoot, type ImageFile, type ReadCounters } from './store-file';
import { openVdi } from './vdi/open';
import { openVhd } from './vhd/open';
import { openVhdx } from './vhdx/open';
import { openVmdk } from './vmdk/open';

export type { ImageFile } from './store-file';
export type { ImageRun } from './map-range';
export type { ImageFormat } from './format/detect';
export { MAX_CHAIN_LENGTH } from './chain';

/** How much work the image's reads have done (all files of the chain). */
export interface DiskImageStats extends ReadCounters {
  metadataCacheHits: number;
  metadataCacheMisses: number;
}

export interface DiskImage extends ByteSource {
  /** Every image reads into the caller's buffer (ByteSource.readInto). */
  readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void>;
  /** The format of the top file, detected by its magic. */
  readonly format: ImageFormat;
  /** What kind of that format: VMDK createType, VHD/VHDX fixed | dynamic | differencing, VDI dynamic | static, qcow2 v2 | v3; undefined for raw. */
  readonly subformat: string | undefined;
  /** The guest's logical sector size as the format records it (VHDX metadata; 512 for the others): partition tables are read in these units. */
  readonly logicalSectorSize: number;
  /** The internal snapshot this image shows (qcow2 `snapshot` option), undefined for the active state. */
  readonly snapshot: ImageSnapshot | undefined;
  /** Every file this image reads: itself first, then its chain down to the base (VMDK extents after the image naming them); cache keys are built from these identities. */
  readonly files: readonly ImageFile[];
  /** Real path of the direct parent image (qcow2 backing file, VMDK parent, VHD/VHDX parent), if any. */
  readonly backingFile: string | undefined;
  /**
   * The guest ranges the top file itself answers (qcow2: its allocated and
   * zero clusters; VMDK: its grains; VHD/VHDX/VDI: its blocks or present
   * sectors), sorted and merged; undefined for a raw image, a fixed VHD or
   * a flat VMDK, whose every byte is its own. For a snapshot over its base
   * these are the only bytes that can differ from the base; without a base,
   * every byte outside them reads as zeros.
   */
  ownRanges(): Promise<readonly GuestRange[] | undefined>;
  /**
   * Where guest bytes [offset, +length) lie, in guest order: 'data' runs are
   * bytes of one of `files` (a pread of `file.path` at `fileOffset` gives
   * exactly what read() gives), 'zero' runs read as zeros, 'unmapped' runs
   * (compressed clusters and grains, sectors a replayed VHDX log replaced)
   * must be read through read(). The range is checked as read() checks it.
   */
  mapRange(offset: number, length: number): Promise<ImageRun[]>;
  /** The internal snapshots the top file holds (qcow2; empty for other formats). */
  listSnapshots(): readonly ImageSnapshot[];
  /**
   * The guest ranges that can differ between internal snapshot `snapshot`
   * (id or name) of the top file and what this image shows (its active state
   * or another snapshot): diff of two snapshots of one qcow2 in time ∝ what
   * changed, from their L1/L2 tables alone. ENOENT naming the snapshots for
   * an unknown one; EOPNOTSUPP for formats without internal snapshots.
   */
  changedSince(snapshot: string): Promise<readonly GuestRange[]>;
  /** Counters of preads and cache use, for tests and telemetry. */
  readonly stats: Readonly<DiskImageStats>;
  close(): Promise<void>;
}

export interface OpenImageOptions {
  /** The image store root: the image and every file it names must resolve (realpath, symlinks followed) to a path inside it. */
  storeRoot: string;
  /** Expected format; refused (EINVAL, naming the format found) when the magic says otherwise. Undefined: detect by magic. */
  format?: ImageFormat;
  /** A qcow2 internal snapshot, by id or name: the image shows that snapshot's disk, read-only. */
  snapshot?: string;
  /** Bytes of parsed metadata (L2 tables, BAT pieces …) kept per image chain; default 8 MiB. */
  metadataCacheBytes?: number;
}

export const DEFAULT_METADATA_CACHE_BYTES = 8 * 1024 * 1024;
/** Decompressed clusters and grains kept per chain. */
const COMPRESSED_CACHE_BYTES = 4 * 1024 * 1024;

interface TopInfo {
  detected: DetectedFormat;
  opened: OpenedLayer;
  snapshots: readonly Qcow2Snapshot[];
  snapshot: Qcow2Snapshot | undefined;
}

async function openFormat(ctx: FormatContext, snapshot: string | undefined): Promise<OpenedLayer & { snapshots?: Qcow2Snapshot[]; snapshot?: Qcow2Snapshot }> {
  switch (ctx.detected.format) {
    case 'raw':
      return { layer: new RawLayer(ctx.file), subformat: undefined, logicalSectorSize: 512 };
    case 'qcow2':
      return openQcow2(ctx, snapshot);
    case 'vmdk':
      return openVmdk(ctx);
    case 'vhd':
      return openVhd(ctx);
    case 'vhdx':
      return openVhdx(ctx);
    case 'vdi':
      return openVdi(ctx);
  }
}

async function openLayer(
  chain: ChainState,
  lexical: string,
  label: string,
  describe: string,
  format: ImageFormat | undefined,
  snapshot: string | undefined,
  top?: { info?: TopInfo },
): Promise<Layer> {
  const images = chain.identities.filter((f) => f.role === 'image').length;
  if (images >= MAX_CHAIN_LENGTH) {
    throw new StrataError(Errno.EINVAL, `${describe}: the backing chain is deeper than ${MAX_CHAIN_LENGTH} images`);
  }
  const file = await StoreFile.open(chain.realRoot, lexical, label, describe, chain.counters);
  const imageIds = new Set(chain.identities.filter((f) => f.role === 'image').map((f) => `${f.dev}:${f.ino}`));
  if (imageIds.has(`${file.dev}:${file.ino}`)) {
    await file.close();
    throw new StrataError(Errno.EINVAL, `${describe} is already in the chain above it: backing file loop`);
  }
  chain.files.push(file);

  const detected = await detectFormatOf((o, n) => file.read(o, n), file.size);
  if (format !== undefined && format !== detected.format) throw wrongFormat(describe, format, detected);
  if (snapshot !== undefined && detected.format !== 'qcow2') {
    throw new StrataError(Errno.EINVAL, `${describe} is a ${detected.format} image: only qcow2 images have internal snapshots`);
  }
  chain.identities.push(file.identity(detected.format));
  const ctx: FormatContext = {
    chain,
    file,
    lexical,
    label,
    detected,
    cacheId: String(chain.files.length - 1),
    openParent: (name, role, parentFormat) => {
      const d = `${role} "${name}" of ${label}`;
      const next = namedPath(chain.realRoot, name, lexical, d);
      return openLayer(chain, next.lexical, next.label, d, parentFormat, undefined);
    },
    openExtent: async (name) => {
      const d = `extent "${name}" of ${label}`;
      if (chain.identities.filter((f) => f.role === 'extent').length >= MAX_EXTENT_FILES) {
        throw new StrataError(Errno.EOPNOTSUPP, `${d}: more than ${MAX_EXTENT_FILES} extent files`);
      }
      const next = namedPath(chain.realRoot, name, lexical, d);
      const extent = await StoreFile.open(chain.realRoot, next.lexical, next.label, d, chain.counters);
      chain.files.push(extent);
      chain.identities.push(extent.identity(detected.format, 'extent'));
      return extent;
    },
  };
  const opened = await openFormat(ctx, snapshot);
  if (top) top.info = { detected, opened, snapshots: opened.snapshots ?? [], snapshot: opened.snapshot };
  return opened.layer;
}

/** Detects the format of an image of the store by its magic, without opening its chain. */
export async function detectFormat(imagePath: string, options: { storeRoot: string }): Promise<DetectedFormat> {
  checkImagePath(imagePath);
  const realRoot = await realStoreRoot(options.storeRoot);
  const file = await StoreFile.open(realRoot, path.resolve(realRoot, imagePath), imagePath, `image ${imagePath}`, { fileReads: 0, fileBytesRead: 0 });
  try {
    return await detectFormatOf((o, n) => file.read(o, n), file.size);
  } finally {
    await file.close();
  }
}

function checkImagePath(imagePath: string): void {
  if (typeof imagePath !== 'string' || imagePath === '' || imagePath.includes('\0')) {
    throw new StrataError(Errno.EINVAL, `invalid image path ${JSON.stringify(imagePath)}`);
  }
  if (path.isAbsolute(imagePath)) {
    throw new StrataError(Errno.EINVAL, `image path ${imagePath} must be relative to the image store`);
  }
}

/**
 * Opens a disk image of the store. `imagePath` is relative to storeRoot (as
 * in a layer source `vmdk:vm/disk.vmdk`). The format is detected by magic
 * unless `format` names one; the image's chain (backing files, parents,
 * extents) is opened with it, every file confined to the store.
 */
export async function openImage(imagePath: string, options: OpenImageOptions): Promise<DiskImage> {
  checkImagePath(imagePath);
  if (options.format !== undefined && !IMAGE_FORMATS.includes(options.format)) {
    throw new StrataError(Errno.EINVAL, `unknown image format ${JSON.stringify(options.format)}; known: ${IMAGE_FORMATS.join(', ')}`);
  }
  if (options.snapshot !== undefined && (typeof options.snapshot !== 'string' || options.snapshot === '')) {
    throw new StrataError(Errno.EINVAL, `invalid snapshot name ${JSON.stringify(options.snapshot)}`);
  }
  const cacheBytes = options.metadataCacheBytes ?? DEFAULT_METADATA_CACHE_BYTES;
  if (!Number.isSafeInteger(cacheBytes) || cacheBytes < 0) {
    throw new StrataError(Errno.EINVAL, `metadataCacheBytes ${cacheBytes} is not a byte count`);
  }
  const realRoot = await realStoreRoot(options.storeRoot);
  const counters: ReadCounters = { fileReads: 0, fileBytesRead: 0 };
  const metadataCounters: CacheCounters = { hits: 0, misses: 0 };
  const chain: ChainState = {
    realRoot,
    files: [],
    identities: [],
    counters,
    caches: {
      metadata: new BoundedCache(cacheBytes, metadataCounters),
      clusters: new BoundedCache(COMPRESSED_CACHE_BYTES, { hits: 0, misses: 0 }),
    },
  };
  const top: { info?: TopInfo } = {};
  let layer: Layer;
  try {
    layer = await openLayer(chain, path.resolve(realRoot, imagePath), imagePath, `image ${imagePath}`, options.format, options.snapshot, top);
  } catch (err) {
    await Promise.all(chain.files.map((f) => f.close()));
    throw StrataError.from(err, `open image ${imagePath}`);
  }
  if (!top.info) throw new StrataError(Errno.EIO, `image ${imagePath}: opened without format information`);
  return new OpenDiskImage(layer, chain, metadataCounters, top.info);
}

function publicSnapshot(s: Qcow2Snapshot): ImageSnapshot {
  return Object.freeze({ id: s.id, name: s.name, vmStateSize: s.vmStateSize, date: s.date, vmClockNs: s.vmClockNs, virtualSize: s.virtualSize });
}

class OpenDiskImage implements DiskImage {
  readonly format: ImageFormat;
  readonly subformat: string | undefined;
  readonly logicalSectorSize: number;
  readonly snapshot: ImageSnapshot | undefined;
  readonly files: readonly ImageFile[];
  readonly backingFile: string | undefined;
  readonly size: number;
  private readonly snapshots: readonly ImageSnapshot[];
  private readonly qcow2Snapshots: readonly Qcow2Snapshot[];
  private closed = false;

  constructor(
    private readonly top: Layer,
    private readonly chain: ChainState,
    private readonly metadataCounters: CacheCounters,
    info: TopInfo,
  ) {
    this.files = Object.freeze(chain.identities.map((f) => Object.freeze({ ...f })));
    this.format = info.detected.format;
    this.subformat = info.opened.subformat ?? info.detected.subformat;
    this.logicalSectorSize = info.opened.logicalSectorSize;
    this.qcow2Snapshots = info.snapshots;
    this.snapshots = Object.freeze(info.snapshots.map(publicSnapshot));
    this.snapshot = info.snapshot ? publicSnapshot(info.snapshot) : undefined;
    this.backingFile = this.files.slice(1).find((f) => f.role === 'image')?.path;
    this.size = top.size;
  }

  get stats(): Readonly<DiskImageStats> {
    return {
      ...this.chain.counters,
      metadataCacheHits: this.metadataCounters.hits,
      metadataCacheMisses: this.metadataCounters.misses,
    };
  }

  private get label(): string {
    return this.chain.files[0].label;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (this.closed) throw new StrataError(Errno.EBADF, `image ${this.label} is closed`);
    checkReadRange(`image ${this.label}`, this.size, offset, length);
    const buf = Buffer.alloc(length);
    try {
      if (length > 0) await this.top.readInto(buf, 0, offset, length);
    } catch (err) {
      throw StrataError.from(err, `read image ${this.label} at offset ${offset}`);
    }
    return buf;
  }

  async readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
    if (this.closed) throw new StrataError(Errno.EBADF, `image ${this.label} is closed`);
    checkReadRange(`image ${this.label}`, this.size, offset, length);
    checkTarget(`image ${this.label}`, target, targetOffset, length);
    try {
      if (length > 0) await this.top.readInto(target, targetOffset, offset, length);
    } catch (err) {
      throw StrataError.from(err, `read image ${this.label} at offset ${offset}`);
    }
  }

  async ownRanges(): Promise<readonly GuestRange[] | undefined> {
    if (this.closed) throw new StrataError(Errno.EBADF, `image ${this.label} is closed`);
    if (!this.top.ownRanges) return undefined;
    try {
      return await this.top.ownRanges();
    } catch (err) {
      throw StrataError.from(err, `image ${this.label}: allocation map`);
    }
  }

  async mapRange(offset: number, length: number): Promise<ImageRun[]> {
    if (this.closed) throw new StrataError(Errno.EBADF, `image ${this.label} is closed`);
    checkReadRange(`image ${this.label}`, this.size, offset, length);
    const runs: LayerRun[] = [];
    try {
      await mapLayer(this.top, offset, length, runs);
    } catch (err) {
      throw StrataError.from(err, `image ${this.label}: map of ${length} bytes at offset ${offset}`);
    }
    const ids = new Map(this.chain.files.map((f, i) => [f, this.files[i]]));
    return runs.map((r) => {
      if (r.kind !== 'data') return r;
      const file = ids.get(r.file);
      if (!file || file.ino !== r.file.ino || file.dev !== r.file.dev) throw new StrataError(Errno.EIO, `image ${this.label}: map names a file outside the chain`);
      return { kind: 'data', file, fileOffset: r.fileOffset, length: r.length };
    });
  }

  listSnapshots(): readonly ImageSnapshot[] {
    return this.snapshots;
  }

  async changedSince(snapshot: string): Promise<readonly GuestRange[]> {
    if (this.closed) throw new StrataError(Errno.EBADF, `image ${this.label} is closed`);
    if (!(this.top instanceof Qcow2Layer)) {
      throw new StrataError(Errno.EOPNOTSUPP, `image ${this.label} is a ${this.format} image: only qcow2 images have internal snapshots`);
    }
    const other = findSnapshot(this.qcow2Snapshots, snapshot);
    if (!other) throw new StrataError(Errno.ENOENT, `qcow2 ${this.label} has no snapshot ${JSON.stringify(snapshot)}; ${listSnapshotNames(this.qcow2Snapshots)}`);
    try {
      return await this.top.changedSince(this.top.withL1(other.l1TableOffset, other.l1Size));
    } catch (err) {
      throw StrataError.from(err, `image ${this.label}: changes since snapshot ${JSON.stringify(snapshot)}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.chain.caches.metadata.clear();
    this.chain.caches.clusters.clear();
    await Promise.all(this.chain.files.map((f) => f.close()));
  }
}
