import * as path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import { checkReadRange, type ByteSource } from './byte-source';
import { BoundedCache, type CacheCounters } from './bounded-cache';
import type { GuestRange, Layer } from './layer';
import { QCOW2_MAGIC, parseQcow2Header } from './qcow2/header';
import { Qcow2Layer, type Qcow2Caches } from './qcow2/image';
import { RawLayer } from './raw/raw-image';
import { StoreFile, realStoreRoot, type ImageFile, type ReadCounters } from './store-file';

export type { ImageFile } from './store-file';
export type ImageFormat = 'raw' | 'qcow2';

/** How much work the image's reads have done (all files of the chain). */
export interface DiskImageStats extends ReadCounters {
  metadataCacheHits: number;
  metadataCacheMisses: number;
}

export interface DiskImage extends ByteSource {
  readonly format: ImageFormat;
  /** Every file this image reads, itself first, then its backing chain down to the base: cache keys are built from these identities. */
  readonly files: readonly ImageFile[];
  /** Real path of the direct backing file, if any (qcow2 only). */
  readonly backingFile: string | undefined;
  /**
   * The guest ranges the top file itself answers (qcow2: its allocated and
   * zero clusters), sorted and merged; undefined for a raw image, whose
   * every byte is its own. For a snapshot over its base these are the only
   * bytes that can differ from the base.
   */
  ownRanges(): Promise<readonly GuestRange[] | undefined>;
  /** Counters of preads and cache use, for tests and telemetry. */
  readonly stats: Readonly<DiskImageStats>;
  close(): Promise<void>;
}

export interface OpenImageOptions {
  /** The image store root: the image and every backing file must resolve (realpath, symlinks followed) to a path inside it. */
  storeRoot: string;
  /** Expected format; refuse with a clear error when the magic says otherwise. Undefined: detect (qcow2 by magic 'QFI\xfb', otherwise raw). */
  format?: ImageFormat;
  /** Bytes of parsed metadata (L2 tables etc.) kept per image chain; default 8 MiB. */
  metadataCacheBytes?: number;
}

export const DEFAULT_METADATA_CACHE_BYTES = 8 * 1024 * 1024;
/** Inflated compressed clusters kept per chain. */
const COMPRESSED_CACHE_BYTES = 4 * 1024 * 1024;
/** Images in one chain, the top one included. */
export const MAX_CHAIN_LENGTH = 128;

interface ChainState {
  realRoot: string;
  files: StoreFile[];
  identities: ImageFile[];
  counters: ReadCounters;
  caches: Qcow2Caches;
}

/** qemu reads 'proto:rest' (before any '/') as a protocol, not a file name. */
const PROTOCOL_PREFIX = /^[A-Za-z0-9.+-]+:/;

function backingLexicalPath(chain: ChainState, name: string, ofLexical: string, ofLabel: string): { lexical: string; label: string } {
  const describe = `backing file "${name}" of ${ofLabel}`;
  let fileName = name;
  if (fileName.startsWith('file:')) fileName = fileName.slice('file:'.length);
  else if (PROTOCOL_PREFIX.test(fileName)) {
    throw new StrataError(Errno.EOPNOTSUPP, `${describe} names a protocol, not a file in the store`);
  }
  if (path.isAbsolute(fileName)) throw new StrataError(Errno.EACCES, `${describe} is an absolute path; only paths relative to the image are allowed`);
  const lexical = path.resolve(path.dirname(ofLexical), fileName);
  const label = path.relative(chain.realRoot, lexical);
  if (label === '..' || label.startsWith(`..${path.sep}`) || path.isAbsolute(label)) {
    throw new StrataError(Errno.EACCES, `${describe} leads outside the store`);
  }
  return { lexical, label };
}

async function openLayer(
  chain: ChainState,
  lexical: string,
  label: string,
  describe: string,
  format: ImageFormat | undefined,
): Promise<Layer> {
  if (chain.files.length >= MAX_CHAIN_LENGTH) {
    throw new StrataError(Errno.EINVAL, `${describe}: the backing chain is deeper than ${MAX_CHAIN_LENGTH} images`);
  }
  const file = await StoreFile.open(chain.realRoot, lexical, label, describe, chain.counters);
  if (chain.files.some((f) => f.dev === file.dev && f.ino === file.ino)) {
    await file.close();
    throw new StrataError(Errno.EINVAL, `${describe} is already in the chain above it: backing file loop`);
  }
  chain.files.push(file);

  const isQcow2 = file.size >= 4 && (await file.read(0, 4)).readUInt32BE(0) === QCOW2_MAGIC;
  const detected: ImageFormat = isQcow2 ? 'qcow2' : 'raw';
  if (format !== undefined && format !== detected) {
    throw new StrataError(
      Errno.EINVAL,
      format === 'qcow2' ? `${describe} is not a qcow2 image (no 'QFI\\xfb' magic)` : `${describe} was expected to be raw but is a qcow2 image`,
    );
  }
  chain.identities.push(file.identity(detected));
  if (detected === 'raw') return new RawLayer(file);

  const header = await parseQcow2Header((n) => file.read(0, n), file.size, label);
  let backing: Layer | undefined;
  if (header.backingName !== undefined) {
    let backingFormat: ImageFormat | undefined;
    if (header.backingFormat !== undefined) {
      if (header.backingFormat !== 'raw' && header.backingFormat !== 'qcow2') {
        throw new StrataError(Errno.EOPNOTSUPP, `backing file "${header.backingName}" of ${label} has format "${header.backingFormat}", which is not supported`);
      }
      backingFormat = header.backingFormat;
    }
    const next = backingLexicalPath(chain, header.backingName, lexical, label);
    backing = await openLayer(chain, next.lexical, next.label, `backing file "${header.backingName}" of ${label}`, backingFormat);
  }
  return new Qcow2Layer(file, header, backing, chain.caches, String(chain.files.indexOf(file)));
}

/** `imagePath` is relative to storeRoot (as in a layer source `qcow2:vm/snap1.qcow2`). */
export async function openImage(imagePath: string, options: OpenImageOptions): Promise<DiskImage> {
  if (typeof imagePath !== 'string' || imagePath === '' || imagePath.includes('\0')) {
    throw new StrataError(Errno.EINVAL, `invalid image path ${JSON.stringify(imagePath)}`);
  }
  if (path.isAbsolute(imagePath)) {
    throw new StrataError(Errno.EINVAL, `image path ${imagePath} must be relative to the image store`);
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
  let top: Layer;
  try {
    top = await openLayer(chain, path.resolve(realRoot, imagePath), imagePath, `image ${imagePath}`, options.format);
  } catch (err) {
    await Promise.all(chain.files.map((f) => f.close()));
    throw err;
  }
  return new OpenDiskImage(top, chain, metadataCounters);
}

class OpenDiskImage implements DiskImage {
  readonly format: ImageFormat;
  readonly files: readonly ImageFile[];
  readonly backingFile: string | undefined;
  readonly size: number;
  private closed = false;

  constructor(
    private readonly top: Layer,
    private readonly chain: ChainState,
    private readonly metadataCounters: CacheCounters,
  ) {
    this.files = Object.freeze(chain.identities.map((f) => Object.freeze({ ...f })));
    this.format = this.files[0].format;
    this.backingFile = this.files[1]?.path;
    this.size = top.size;
  }

  get stats(): Readonly<DiskImageStats> {
    return {
      ...this.chain.counters,
      metadataCacheHits: this.metadataCounters.hits,
      metadataCacheMisses: this.metadataCounters.misses,
    };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const label = this.chain.files[0].label;
    if (this.closed) throw new StrataError(Errno.EBADF, `image ${label} is closed`);
    checkReadRange(`image ${label}`, this.size, offset, length);
    const buf = Buffer.alloc(length);
    if (length > 0) await this.top.readInto(buf, 0, offset, length);
    return buf;
  }

  async ownRanges(): Promise<readonly GuestRange[] | undefined> {
    if (this.closed) throw new StrataError(Errno.EBADF, `image ${this.chain.files[0].label} is closed`);
    return this.top instanceof Qcow2Layer ? this.top.ownRanges() : undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.chain.caches.metadata.clear();
    this.chain.caches.clusters.clear();
    await Promise.all(this.chain.files.map((f) => f.close()));
  }
}
