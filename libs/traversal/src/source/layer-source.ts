import type { FileType } from '@strata/posix';
import type { ExtentRun } from './extent-map';

/**
 * stat(2) of one object in a layer, spelled as node's BigIntStats spells it
 * so that a `dir:` source hands lstat's answer over without copying.
 */
export interface SourceStat {
  /** Distinguishes sources: objects of two sources never share (dev, ino). */
  dev: bigint;
  ino: bigint;
  mode: bigint;
  nlink: bigint;
  uid: bigint;
  gid: bigint;
  rdev: bigint;
  size: bigint;
  blocks: bigint;
  blksize: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** A source's own handle of an object: a host path for `dir:`, an inode number inside an image. */
export type ObjectRef = Buffer | number;

/** One object (file, directory, link, ...) of one layer, as the engine holds it. */
export interface LayerObject {
  readonly layer: LayerSource;
  readonly ref: ObjectRef;
  readonly st: SourceStat;
}

/** A name in a directory with the type the directory itself records ('unknown' when it cannot tell). */
export interface SourceDirent {
  name: Buffer;
  type: FileType;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

/**
 * Everything the delta traversal reads from one layer. The overlay merge,
 * diff and walk see layers only through this, so a folder on the host and a
 * filesystem inside a VM disk image are interchangeable. Every method is
 * asynchronous because an image answers from positional reads of a file;
 * nothing assumes a host directory exists.
 */
export interface LayerSource {
  /**
   * What the layer's content is: equal identities mean equal content. Cache
   * keys and "the same object on both sides" in diff rest on it.
   */
  readonly identity: string;
  /**
   * Whether the overlayfs conventions (whiteouts, opaque markers, private
   * xattrs) apply to this layer. A VM image projected alone shows its
   * filesystem exactly as the kernel mounts it; under a `dir:` overlay it
   * is a lower layer like any other.
   */
  readonly overlayRules: boolean;
  root(): Promise<LayerObject>;
  /** The object a name in a directory leads to (never followed), undefined when there is none. */
  lookup(dir: LayerObject, name: Buffer): Promise<LayerObject | undefined>;
  /** The names of a directory ("." and ".." left out), in no particular order. */
  list(dir: LayerObject): Promise<SourceDirent[]>;
  /** Looks up many names of one directory at once (a listing wants every winner): undefined where a name has gone. */
  lookupMany(dir: LayerObject, names: readonly Buffer[]): Promise<(LayerObject | undefined)[]>;
  readlink(obj: LayerObject): Promise<Buffer>;
  /** Up to `length` bytes at `offset`; fewer only at the end of the file. */
  read(obj: LayerObject, offset: number, length: number): Promise<Buffer>;
  listXattrs(obj: LayerObject): Promise<string[]>;
  getXattr(obj: LayerObject, name: string): Promise<Buffer | undefined>;
  statfs(): Promise<StatFs>;
  /** Bytes that find the object again without a lookup (kept in cache records, so any replica can read it). */
  locate(obj: LayerObject): Buffer;
  /** Reads the object behind a location, as `read` would; the location came from `locate` of an equal source. */
  readLocated(location: Buffer, offset: number, length: number): Promise<Buffer>;
  /**
   * readLocated into the caller's buffer (from its start, at least `length`
   * long), for readers that reuse their buffers: the count read, short only
   * at the end of the file. Optional: a source without it is read with readLocated.
   */
  readLocatedInto?(location: Buffer, into: Buffer, offset: number, length: number): Promise<number>;
  /** Releases what the source holds open (file handles of an image, an fd cache). */
  close(): Promise<void>;
  /**
   * What this source knows of where it can differ from `base` (a qcow2
   * snapshot over the image of its backing file), undefined when it knows
   * nothing: diff then compares everything.
   */
  deltaOver?(base: LayerSource): Promise<DeltaHint | undefined>;
  /**
   * Where bytes [offset, offset+length) of a regular file lie in the store,
   * clipped to its size as read() clips: runs of store files (by real path),
   * zeros, and unmapped runs only read() serves. For sealed layers: reading
   * the data runs straight from the store gives what read() gives.
   */
  extentMap?(obj: LayerObject, offset: number, length: number): Promise<ExtentRun[]>;
  /**
   * The store file that is this regular file whole (a sealed `dir:`
   * layer's file), named from what the source already holds, without a
   * system call: its path relative to the store root and the stat the
   * object was found with. Undefined when the object is not one store file
   * whole, or the source cannot vouch that its objects are still as found
   * (a LIVE folder).
   */
  storeFile?(obj: LayerObject): StoreFileRef | undefined;
}

/** A store file as a source found it: store-relative path (no leading slash) and lstat(2) of it then. */
export interface StoreFileRef {
  path: Buffer;
  st: SourceStat;
}

/** A source's word on pairs of objects it knows to be equal. */
export interface DeltaHint {
  /**
   * True only when `a` (of the base) and `b` (of this source) have the same
   * attributes, xattrs and content and, for directories, the same entries
   * all the way down. False means "look".
   */
  unchanged(a: LayerObject, b: LayerObject): boolean;
}

/** Objects of equal sources with equal refs are the same object. */
export function sameObject(a: LayerObject, b: LayerObject): boolean {
  if (a.layer.identity !== b.layer.identity) return false;
  return typeof a.ref === 'number' || typeof b.ref === 'number' ? a.ref === b.ref : a.ref.equals(b.ref);
}
