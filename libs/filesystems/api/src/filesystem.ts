/**
 * The seam between a volume's bytes and the tree strata projects. Every
 * filesystem reader (ext4, xfs, btrfs, vfat, ntfs) implements `Filesystem`;
 * the traversal engine knows filesystems only through it.
 *
 * Failure policy (docs/images.md): damage is confined to the smallest object
 * it touches. A listing names every entry the kernel's readdir names even
 * when an entry's inode is unreadable; `node()` of that entry then fails with
 * the kernel's errno (EUCLEAN for a corrupt structure, EBADMSG for a checksum
 * the kernel rejects, EIO for an unreadable block). Errors are StrataErrors
 * (`@strata/errors`) carrying that errno; nothing else may escape a call.
 */

/** Random-access read-only bytes (a partition or logical volume). */
export interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes at `offset`; a range past `size` rejects with EIO. Concurrent calls are allowed. */
  read(offset: number, length: number): Promise<Buffer>;
  /** read() into the caller's buffer, every byte or a rejection; optional (a disk image's volumes have it: no allocation, no copy). */
  readInto?(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void>;
}

export type FileType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket' | 'unknown';

/** A filesystem's type as `blkid`/the kernel names it. */
export type FilesystemType = 'ext2' | 'ext3' | 'ext4' | 'xfs' | 'btrfs' | 'vfat' | 'ntfs';

/**
 * One object, stat(2) as the kernel (or, for vfat and ntfs, the reference
 * driver named in docs/images.md) reports it.
 */
export interface FsNode {
  /** The reader's own key of the object: what every other call takes. A safe integer, unique in the filesystem. */
  handle: number;
  /** st_ino as the kernel reports it (a safe integer: readers refuse larger ones with EOVERFLOW). */
  ino: number;
  /**
   * Objects with different values report different st_dev (btrfs: one
   * anonymous device per subvolume, as the kernel gives); 0 for most.
   */
  devIndex: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  /** glibc dev_t encoding (as Node's lstat reports rdev). */
  rdev: number;
  /** st_blocks in 512-byte units. */
  blocks: number;
  /** st_blksize. */
  blksize: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** Birth time where the filesystem records one. */
  crtimeNs?: bigint;
}

/** A name in a directory as the directory records it ("." and ".." are never listed). */
export interface FsDirEntry {
  name: Buffer;
  /** Handle of the object the entry names (node() of it may still fail: damage is per object). */
  handle: number;
  /** From the directory entry when it records one, else 'unknown'. */
  type: FileType;
}

export interface FsXattr {
  /** Full name with namespace as listxattr(2) gives it (`user.x`, `security.selinux`, `system.posix_acl_access`). */
  name: string;
  value: Buffer;
}

export interface FsStatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

/** Noteworthy events (a checksum mismatch, a replayed log, a damaged object), one object each. */
export type FsEvent = Record<string, unknown>;

export interface FilesystemOptions {
  /** 'replay' (default): a log/journal needing recovery is applied in memory, as the kernel's mount would. 'ignore': read as on disk. */
  journal?: 'replay' | 'ignore';
  /** Bytes of metadata kept in memory. */
  cacheBytes?: number;
  log?: (event: FsEvent) => void;
}

/**
 * Where a stretch of a file's bytes lies on the volume: 'data' is `length`
 * bytes at `volumeOffset` of the volume the filesystem was opened on, exactly
 * what read() gives there; 'zero' reads as zeros (a hole, an unwritten
 * extent); 'unmapped' has no plain place on the volume (inline data,
 * compressed or encrypted extents, blocks a replayed journal or log replaced
 * in memory): read it through read().
 */
export type FileExtent =
  | { kind: 'data'; volumeOffset: number; length: number }
  | { kind: 'zero'; length: number }
  | { kind: 'unmapped'; length: number; reason: string };

export interface Filesystem {
  readonly type: FilesystemType;
  /** Handle of the root directory. */
  readonly rootHandle: number;
  /** The filesystem's block (or cluster) size, for st_blksize defaults. */
  readonly blockSize: number;
  readonly label: string;
  /** As blkid prints it (ext4/xfs/btrfs: canonical UUID; vfat: XXXX-XXXX; ntfs: 16 hex digits). */
  readonly uuid: string;
  /** The image was taken while mounted (or after a crash): a journal/log had to be replayed, or (ntfs) it is unclean or hibernated. */
  readonly needsRecovery: boolean;
  node(handle: number): Promise<FsNode>;
  /** The handle a name leads to in directory `dir`, undefined when it has none. Fails where the kernel's lookup fails. */
  lookup(dir: number, name: Buffer): Promise<number | undefined>;
  readdir(dir: number): Promise<FsDirEntry[]>;
  readlink(handle: number): Promise<Buffer>;
  /** Up to `length` bytes at `offset`; fewer only at the end of the file. */
  read(handle: number, offset: number, length: number): Promise<Buffer>;
  xattrs(handle: number): Promise<FsXattr[]>;
  statfs(): Promise<FsStatFs>;
  /**
   * Where bytes [offset, offset+length) of a regular file lie, clipped to its
   * size as read() clips, in file order, covering the clipped range exactly
   * (empty at or past the end). Errors as read() fails (EISDIR, EINVAL for a
   * non-regular file). Absent for readers that cannot say.
   */
  fileExtents?(handle: number, offset: number, length: number): Promise<FileExtent[]>;
}

/**
 * How a reader is offered to the prober: `detect` looks only at magic
 * numbers (cheap, never throws on garbage); `open` parses and validates.
 */
export interface FilesystemDriver {
  readonly type: FilesystemType | readonly FilesystemType[];
  detect(source: ByteSource): Promise<FilesystemType | undefined>;
  open(source: ByteSource, options?: FilesystemOptions): Promise<Filesystem>;
}
