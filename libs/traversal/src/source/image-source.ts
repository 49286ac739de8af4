import { createHash } from 'node:crypto';
import { Ext4, type Ext4Inode } from '@strata/ext4';
import { StrataError } from '@strata/errors';
import { isDirMode } from '@strata/posix';
import { splitPath, printable } from '../paths';
import { openImageVolume, type ImageVolume } from './image-volume';
import { ImageDelta, ParentIndex, changedBlockRuns } from './image-delta';
import type { DeltaHint, LayerObject, LayerSource, SourceDirent, SourceStat, StatFs } from './layer-source';

/** Names looked up at once when a listing wants every entry's inode. */
const LOOKUP_BATCH = 256;

export interface ImageSourceOptions {
  storeRoot: string;
  /** The image file, relative to the store root. */
  image: string;
  format: 'raw' | 'qcow2';
  /** As Linux numbers partitions; undefined: the disk itself or its only Linux partition. */
  partition?: number;
  /** The directory inside the filesystem that is the layer's root. */
  filesystemPath?: string;
  /** Whether overlayfs conventions apply (a `dir:` overlay sits above this image in the merge). */
  overlayRules?: boolean;
  log?: (event: Record<string, unknown>) => void;
}

/**
 * A VM disk image layer: image format, partition and ext2/3/4 filesystem,
 * read directly from the image file(s) of the store. Objects are named by
 * inode number, which is also their st_ino as the kernel reports it.
 */
export class ImageSource implements LayerSource {
  readonly overlayRules: boolean;
  readonly identity: string;
  /** Gives this filesystem a dev of its own, so (dev, ino) never matches another image's inode. */
  private readonly dev: bigint;
  /** Built the first time a snapshot of this image is diffed against it, then kept with the source. */
  private parentIndex: Promise<ParentIndex> | undefined;

  private constructor(
    private readonly vol: ImageVolume,
    private readonly fs: Ext4,
    private readonly rootIno: number,
    options: ImageSourceOptions,
  ) {
    this.overlayRules = options.overlayRules ?? false;
    // Every file of the backing chain, as it is now: a rewritten image is another identity.
    const files = vol.image.files.map((f) => `${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}`).join(',');
    this.identity = `${vol.image.format}:${files}#${vol.partition ?? 0}:${options.filesystemPath ?? '/'}`;
    this.dev = BigInt(`0x${createHash('sha256').update(this.identity).digest('hex').slice(0, 13)}`);
  }

  static async open(options: ImageSourceOptions): Promise<ImageSource> {
    const vol = await openImageVolume(options.storeRoot, options.image, options.format, options.partition);
    try {
      const fs = await Ext4.open(vol.volume, options.log ? { log: options.log } : {});
      const rootIno = await resolveRoot(fs, options.filesystemPath ?? '/', options.image);
      return new ImageSource(vol, fs, rootIno, options);
    } catch (err) {
      await vol.image.close();
      throw err;
    }
  }

  /** The real path of the image's direct backing file (qcow2), for checking a snapshot against its base. */
  get backingFile(): string | undefined {
    return this.vol.image.backingFile;
  }

  /** The real path of the image file itself. */
  get imageFile(): string {
    return this.vol.image.files[0].path;
  }

  /** Real paths of every file the image reads, itself first, then its backing chain. */
  get files(): string[] {
    return this.vol.image.files.map((f) => f.path);
  }

  /** Whether the guest has started a journal transaction since this reader opened (a running VM's disk). */
  journalHeadChanged(): Promise<boolean> {
    return this.fs.journalHeadChanged();
  }

  get needsRecovery(): boolean {
    return this.fs.needsRecovery;
  }

  async root(): Promise<LayerObject> {
    return this.object(await this.fs.inode(this.rootIno));
  }

  async lookup(dir: LayerObject, name: Buffer): Promise<LayerObject | undefined> {
    const ino = await this.fs.lookup(this.inoOf(dir), name);
    return ino === undefined ? undefined : this.object(await this.fs.inode(ino));
  }

  async list(dir: LayerObject): Promise<SourceDirent[]> {
    return (await this.fs.readdir(this.inoOf(dir))).map((e) => ({ name: e.name, type: e.type }));
  }

  /**
   * The listing already names every entry's inode: one pass over the
   * directory, then the inodes, instead of a directory search per name.
   */
  async lookupMany(dir: LayerObject, names: readonly Buffer[]): Promise<(LayerObject | undefined)[]> {
    const inos = new Map<string, number>();
    for (const e of await this.fs.readdir(this.inoOf(dir))) inos.set(e.name.toString('latin1'), e.ino);
    const out: (LayerObject | undefined)[] = [];
    for (let i = 0; i < names.length; i += LOOKUP_BATCH) {
      const batch = names.slice(i, i + LOOKUP_BATCH).map(async (n) => {
        const ino = inos.get(n.toString('latin1'));
        return ino === undefined ? undefined : this.object(await this.fs.inode(ino));
      });
      out.push(...(await Promise.all(batch)));
    }
    return out;
  }

  readlink(obj: LayerObject): Promise<Buffer> {
    return this.fs.readlink(this.inoOf(obj));
  }

  read(obj: LayerObject, offset: number, length: number): Promise<Buffer> {
    return this.fs.read(this.inoOf(obj), offset, length);
  }

  async listXattrs(obj: LayerObject): Promise<string[]> {
    return (await this.fs.xattrs(this.inoOf(obj))).map((x) => x.name);
  }

  async getXattr(obj: LayerObject, name: string): Promise<Buffer | undefined> {
    return (await this.fs.xattrs(this.inoOf(obj))).find((x) => x.name === name)?.value;
  }

  async statfs(): Promise<StatFs> {
    return this.fs.statfs();
  }

  locate(obj: LayerObject): Buffer {
    return Buffer.from(String(this.inoOf(obj)));
  }

  readLocated(location: Buffer, offset: number, length: number): Promise<Buffer> {
    const text = location.toString('latin1');
    if (!/^[1-9][0-9]{0,9}$/.test(text)) return Promise.reject(StrataError.io(`cached location ${JSON.stringify(text)} is not an inode number`));
    return this.fs.read(Number(text), offset, length);
  }

  close(): Promise<void> {
    return this.vol.image.close();
  }

  /**
   * For a qcow2 snapshot over the image of its base: the clusters its own
   * file holds bound the blocks, hence the inodes, that can differ, so diff
   * skips every subtree none of them is in.
   */
  async deltaOver(base: LayerSource): Promise<DeltaHint | undefined> {
    if (!(base instanceof ImageSource) || base === this) return undefined;
    const backing = this.vol.image.backingFile;
    if (backing === undefined || backing !== base.imageFile) return undefined;
    const [a, b] = [base.fs, this.fs];
    if (
      base.vol.offset !== this.vol.offset ||
      base.rootIno !== this.rootIno ||
      a.blockSize !== b.blockSize ||
      a.inodeSize !== b.inodeSize ||
      a.blocksCount !== b.blocksCount
    ) {
      return undefined;
    }
    const own = await this.vol.image.ownRanges();
    if (!own) return undefined;
    const runs = changedBlockRuns(own, this.vol.offset, b.blockSize, b.blocksCount, [...a.replayedBlocks(), ...b.replayedBlocks()]);
    const delta = await ImageDelta.compute(a, b, this.rootIno, runs, await base.parents());
    return {
      unchanged: (x, y) => x.layer === base && y.layer === this && typeof x.ref === 'number' && typeof y.ref === 'number' && delta.unchanged(x.ref, y.ref),
    };
  }

  private parents(): Promise<ParentIndex> {
    if (!this.parentIndex) {
      const building = ParentIndex.build(this.fs, this.rootIno);
      this.parentIndex = building;
      building.catch(() => {
        if (this.parentIndex === building) this.parentIndex = undefined;
      });
    }
    return this.parentIndex;
  }

  private inoOf(obj: LayerObject): number {
    if (obj.layer !== this || typeof obj.ref !== 'number') throw StrataError.io('object handed to the wrong layer source');
    return obj.ref;
  }

  private object(inode: Ext4Inode): LayerObject {
    return { layer: this, ref: inode.ino, st: this.stat(inode) };
  }

  private stat(i: Ext4Inode): SourceStat {
    return {
      dev: this.dev,
      ino: BigInt(i.ino),
      mode: BigInt(i.mode),
      nlink: BigInt(i.nlink),
      uid: BigInt(i.uid),
      gid: BigInt(i.gid),
      rdev: BigInt(i.rdev),
      size: BigInt(i.size),
      blocks: BigInt(i.blocks),
      blksize: BigInt(this.fs.blockSize),
      atimeNs: i.atimeNs,
      mtimeNs: i.mtimeNs,
      ctimeNs: i.ctimeNs,
    };
  }
}

/** The inode of a layer's root inside the filesystem; every name on the way must be a directory (no symlinks followed). */
async function resolveRoot(fs: Ext4, filesystemPath: string, image: string): Promise<number> {
  let ino = fs.rootIno;
  for (const name of splitPath(Buffer.from(filesystemPath))) {
    const next = await fs.lookup(ino, name);
    if (next === undefined) throw StrataError.notFound(`path ${filesystemPath} does not exist in disk image ${image}`);
    const inode = await fs.inode(next);
    if (!isDirMode(inode.mode)) throw StrataError.notDir(`path ${printable(Buffer.from(filesystemPath))} in disk image ${image} is not a directory`);
    ino = next;
  }
  return ino;
}
