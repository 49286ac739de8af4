import * as path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import type { BoundedCache } from './bounded-cache';
import type { DetectedFormat, ImageFormat } from './format/detect';
import type { Layer } from './layer';
import type { ImageFile, ReadCounters, StoreFile } from './store-file';

/** Caches shared by every image of one chain, each bounded in bytes. */
export interface ChainCaches {
  /** Parsed metadata: L1 pieces and L2 tables, BAT and grain-table pieces. */
  metadata: BoundedCache;
  /** Decompressed clusters and grains (sequential reads hit one many times). */
  clusters: BoundedCache;
}

/** Everything one openImage call has opened so far. */
export interface ChainState {
  realRoot: string;
  files: StoreFile[];
  identities: ImageFile[];
  counters: ReadCounters;
  caches: ChainCaches;
}

/** Images in one chain, the top one included. */
export const MAX_CHAIN_LENGTH = 128;
/** Data files (VMDK extents) of one chain. */
export const MAX_EXTENT_FILES = 1024;

/** What a format's opener hands back. */
export interface OpenedLayer {
  layer: Layer;
  subformat: string | undefined;
  /** The guest's logical sector size (VHDX metadata, 512 elsewhere). */
  logicalSectorSize: number;
}

/** What a format's opener is given. */
export interface FormatContext {
  chain: ChainState;
  file: StoreFile;
  /** Absolute lexical path of the file (names inside it resolve relative to its directory). */
  lexical: string;
  /** Store-relative path, as errors name it. */
  label: string;
  detected: DetectedFormat;
  /** Distinguishes this image's entries in the chain-wide caches. */
  cacheId: string;
  /** Opens a parent image named inside this one (backing file, parentFileNameHint, parent locator), confined to the store. */
  openParent(name: string, role: string, format: ImageFormat | undefined): Promise<Layer>;
  /** Opens a data file this image names (a VMDK extent), confined to the store. */
  openExtent(name: string): Promise<StoreFile>;
}

/** qemu reads 'proto:rest' (before any '/') as a protocol, not a file name. */
const PROTOCOL_PREFIX = /^[A-Za-z0-9.+-]+:/;

/**
 * Where a name stored in an image leads: relative to the directory of the
 * image naming it (as qemu resolves backing files), never absolute, never
 * outside the store.
 */
export function namedPath(realRoot: string, name: string, ofLexical: string, describe: string): { lexical: string; label: string } {
  let fileName = name;
  if (fileName.startsWith('file:')) fileName = fileName.slice('file:'.length);
  else if (PROTOCOL_PREFIX.test(fileName)) {
    throw new StrataError(Errno.EOPNOTSUPP, `${describe} names a protocol, not a file in the store`);
  }
  if (path.isAbsolute(fileName) || /^[A-Za-z]:[\\/]/.test(fileName) || fileName.startsWith('\\\\')) {
    throw new StrataError(Errno.EACCES, `${describe} is an absolute path; only paths relative to the image are allowed`);
  }
  if (fileName === '' || fileName.includes('\0')) throw StrataError.corrupt(`${describe} is not a file name`);
  const lexical = path.resolve(path.dirname(ofLexical), fileName);
  const label = path.relative(realRoot, lexical);
  if (label === '..' || label.startsWith(`..${path.sep}`) || path.isAbsolute(label)) {
    throw new StrataError(Errno.EACCES, `${describe} leads outside the store`);
  }
  return { lexical, label };
}
