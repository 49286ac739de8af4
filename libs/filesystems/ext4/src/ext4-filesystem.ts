import type { ByteSource, FileExtent, Filesystem, FilesystemDriver, FilesystemOptions, FilesystemType, FsDirEntry, FsNode, FsStatFs, FsXattr } from '@strata/filesystem';
import { Ext4 } from './ext4';
import type { Ext4Inode } from './types';

/** The superblock magic 0xEF53 at byte 1024 + 56. */
const MAGIC_OFFSET = 1024 + 56;

/**
 * The ext2/3/4 reader seen through the filesystem seam: handles are inode
 * numbers, which are also st_ino. The reader itself stays reachable as
 * `ext4` for what only ext4 has (journal head, block-level deltas).
 */
export class Ext4Filesystem implements Filesystem {
  readonly type: FilesystemType;
  readonly rootHandle: number;
  readonly blockSize: number;
  readonly label: string;
  readonly uuid: string;
  readonly needsRecovery: boolean;

  constructor(readonly ext4: Ext4) {
    this.type = ext4.kind;
    this.rootHandle = ext4.rootIno;
    this.blockSize = ext4.blockSize;
    this.label = ext4.label;
    this.uuid = ext4.uuid;
    this.needsRecovery = ext4.needsRecovery;
  }

  async node(handle: number): Promise<FsNode> {
    return fsNode(await this.ext4.inode(handle), this.blockSize);
  }

  lookup(dir: number, name: Buffer): Promise<number | undefined> {
    return this.ext4.lookup(dir, name);
  }

  async readdir(dir: number): Promise<FsDirEntry[]> {
    return (await this.ext4.readdir(dir)).map((e) => ({ name: e.name, handle: e.ino, type: e.type }));
  }

  readlink(handle: number): Promise<Buffer> {
    return this.ext4.readlink(handle);
  }

  read(handle: number, offset: number, length: number): Promise<Buffer> {
    return this.ext4.read(handle, offset, length);
  }

  xattrs(handle: number): Promise<FsXattr[]> {
    return this.ext4.xattrs(handle);
  }

  fileExtents(handle: number, offset: number, length: number): Promise<FileExtent[]> {
    return this.ext4.fileExtents(handle, offset, length);
  }

  async statfs(): Promise<FsStatFs> {
    return this.ext4.statfs();
  }
}

function fsNode(i: Ext4Inode, blockSize: number): FsNode {
  return {
    handle: i.ino,
    ino: i.ino,
    devIndex: 0,
    mode: i.mode,
    uid: i.uid,
    gid: i.gid,
    nlink: i.nlink,
    size: i.size,
    rdev: i.rdev,
    blocks: i.blocks,
    blksize: blockSize,
    atimeNs: i.atimeNs,
    mtimeNs: i.mtimeNs,
    ctimeNs: i.ctimeNs,
    ...(i.crtimeNs === undefined ? {} : { crtimeNs: i.crtimeNs }),
  };
}

export const ext4Driver: FilesystemDriver = {
  type: ['ext2', 'ext3', 'ext4'],
  async detect(source: ByteSource): Promise<FilesystemType | undefined> {
    if (source.size < MAGIC_OFFSET + 2) return undefined;
    const magic = await source.read(MAGIC_OFFSET, 2);
    return magic.readUInt16LE(0) === 0xef53 ? 'ext4' : undefined;
  },
  async open(source: ByteSource, options: FilesystemOptions = {}): Promise<Filesystem> {
    return new Ext4Filesystem(await Ext4.open(source, options));
  },
};
