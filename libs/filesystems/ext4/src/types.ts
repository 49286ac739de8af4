/** What the reader reads from (structurally identical to @strata/disk-image's ByteSource). */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** read() into the caller's buffer: every byte of the range, or a rejection. Optional; file data is read through it when present. */
  readInto?(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void>;
}

export type Ext4Event = Record<string, unknown>;

export interface Ext4Options {
  /**
   * 'replay' (default): an image whose journal needs recovery is read as the
   * kernel reads it after recovery (committed transactions applied in memory;
   * the image is never written). 'ignore': read as it is on disk.
   */
  journal?: 'replay' | 'ignore';
  /** Bytes of metadata blocks (inodes, directory blocks, extent nodes, group descriptors) kept in memory; default 32 MiB. */
  cacheBytes?: number;
  /** Called with one object per noteworthy event (e.g. a checksum mismatch: { event: 'ext4.checksum', structure, ino?, block? }). */
  log?: (event: Ext4Event) => void;
}

export interface Ext4Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  /** glibc dev_t encoding, as Node's lstat reports it. */
  rdev: number;
  /** st_blocks in 512-byte units. */
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  crtimeNs: bigint | undefined;
  flags: number;
  generation: number;
}

export type Ext4FileType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket' | 'unknown';

export interface Ext4DirEntry {
  name: Buffer;
  ino: number;
  /** From the dirent file_type when the filetype feature is on. */
  type: Ext4FileType;
}

export interface Ext4StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

export interface Ext4Xattr {
  name: string;
  value: Buffer;
}

/** Where one block group's inode table lives, limited to its initialised part. */
export interface Ext4InodeTable {
  group: number;
  /** Inode number of the table's first slot. */
  firstIno: number;
  /** Initialised inodes (slots) from firstIno on. */
  inodes: number;
  /** First block of the table. */
  block: number;
  /** Blocks those inodes occupy. */
  blocks: number;
}
