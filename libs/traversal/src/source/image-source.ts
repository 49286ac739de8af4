import { createHash } from 'node:crypto';
import { Ext4Filesystem } from '@strata/ext4';
import type { Filesystem, FsNode } from '@strata/filesystem';
import { StrataError } from '@strata/errors';
import { isDirMode } from '@strata/posix';
import { splitPath, printable } from '../paths';
import { openFilesystem } from './filesystem-drivers';
import { openImageVolume, type ImageSourceFormat, type ImageVolume } from './image-volume';
import { ImageDelta, ParentIndex, changedBlockRuns } from './image-delta';
import type { DeltaHint, LayerObject, LayerSource, SourceDirent, SourceStat, StatFs } from './layer-source';
import { imageExtentMap, type ExtentRun } from './extent-map';

/** Names looked up at once when a listing wants every entry's inode. */
const LOOKUP_BATCH = 256;
/** Listings kept between list() and lookupMany() of one directory, at most, and their entries together. */
const MAX_KEPT_LISTINGS = 64;
const MAX_KEPT_LISTED_ENTRIES = 65_536;

/** An ext2/3/4 directory's entries and what a lookup of each listed name gives. */
type Listed = Awaited<ReturnType<Ext4Filesystem['ext4']['readdirResolved']>>;

export interface ImageSourceOptions {
  storeRoot: string;
  /** The image file, relative to the store root. */
  image: string;
  /** The image format the layer's source names; 'image' detects it by magic. */
  format: ImageSourceFormat;
  /** A qcow2 internal snapshot (name or id) to read instead of the active state. */
  snapshot?: string;
  /** As Linux numbers partitions; undefined: the disk itself or its only Linux partition. */
  partition?: number;
  /** A logical volume of an LVM2 volume group on the disk (`#VG/LV`), instead of a partition. */
  logicalVolume?: { vg: string; lv: string };
  /** The directory inside the filesystem that is the layer's root. */
  filesystemPath?: string;
  /** Whether overlayfs conventions apply (a `dir:` overlay sits above this image in the merge). */
  overlayRules?: boolean;
  log?: (event: Record<string, unknown>) => void;
}

/**
 * A VM disk image layer: image format, partition or logical volume, and the
 * filesystem on it (any reader behind the filesystem seam), read directly
 * from the image file(s) of the store. Objects are named by the reader's
 * handle; st_ino is what the kernel reports.
 */
export class ImageSource implements LayerSource {
  readonly overlayRules: boolean;
  readonly identity: string;
  /** Gives this filesystem a dev of its own, so (dev, ino) never matches another image's inode. */
  private readonly dev: bigint;
  /** st_dev of objects whose reader gives another device index (btrfs subvolumes). */
  private readonly devs = new Map<number, bigint>();
  /** The ext2/3/4 reader when that is the filesystem: journal head checks and block-level deltas are ext4's. */
  private readonly ext4: Ext4Filesystem | undefined;
  /** Built the first time a snapshot of this image is diffed against it, then kept with the source. */
  private parentIndex: Promise<ParentIndex> | undefined;

  private constructor(
    private readonly vol: ImageVolume,
    private readonly fs: Filesystem,
    private readonly rootIno: number,
    options: ImageSourceOptions,
  ) {
    this.overlayRules = options.overlayRules ?? false;
    // Every file of the backing chain, as it is now: a rewritten image is another identity.
    const files = vol.image.files.map((f) => `${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}`).join(',');
    const snapshot = options.snapshot === undefined ? '' : `@${options.snapshot}`;
    this.identity = `${vol.image.format}:${files}${snapshot}#${vol.label}:${options.filesystemPath ?? '/'}`;
    this.dev = devOf(this.identity);
    this.ext4 = fs instanceof Ext4Filesystem ? fs : undefined;
  }

  static async open(options: ImageSourceOptions): Promise<ImageSource> {
    const vol = await openImageVolume(options);
    try {
      const fs = await openFilesystem(vol.volume, vol.describe, options.log ? { log: options.log } : {});
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

  /** The filesystem's type as blkid names it (ext4, xfs, btrfs, vfat, ntfs). */
  get filesystemType(): string {
    return this.fs.type;
  }

  /** The image format read (detected for `image:` sources). */
  get imageFormat(): string {
    return this.vol.image.format;
  }

  /** Whether the guest has started a journal transaction since this reader opened (a running VM's disk). */
  journalHeadChanged(): Promise<boolean> {
    return this.ext4 ? this.ext4.ext4.journalHeadChanged() : Promise.resolve(false);
  }

  get needsRecovery(): boolean {
    return this.fs.needsRecovery;
  }

  async root(): Promise<LayerObject> {
    return this.object(await this.fs.node(this.rootIno));
  }

  async lookup(dir: LayerObject, name: Buffer): Promise<LayerObject | undefined> {
    const ino = await this.fs.lookup(this.inoOf(dir), name);
    return ino === undefined ? undefined : this.object(await this.fs.node(ino));
  }

  async list(dir: LayerObject): Promise<SourceDirent[]> {
    const dirIno = this.inoOf(dir);
    if (this.ext4) {
      // Listed and resolved in one pass, kept for the lookupMany a merge makes next; a resolve that fails lists alone.
      const both = await this.ext4.ext4.readdirResolved(dirIno).catch(() => undefined);
      if (both) {
        this.keepListed(dirIno, both);
        return both.entries.map((e) => ({ name: e.name, type: e.type }));
      }
    }
    return (await this.fs.readdir(dirIno)).map((e) => ({ name: e.name, type: e.type }));
  }

  /** Listings list() resolved, until lookupMany takes them (a walk lists dozens of directories at once). */
  private readonly listed = new Map<number, Listed>();
  private listedEntries = 0;

  private keepListed(dirIno: number, both: Listed): void {
    if (both.entries.length > MAX_KEPT_LISTED_ENTRIES) return;
    this.takeListed(dirIno);
    while (this.listed.size >= MAX_KEPT_LISTINGS || this.listedEntries + both.entries.length > MAX_KEPT_LISTED_ENTRIES) {
      const oldest = this.listed.keys().next();
      if (oldest.done) break;
      this.takeListed(oldest.value);
    }
    this.listed.set(dirIno, both);
    this.listedEntries += both.entries.length;
  }

  private takeListed(dirIno: number): Listed | undefined {
    const both = this.listed.get(dirIno);
    if (both) {
      this.listed.delete(dirIno);
      this.listedEntries -= both.entries.length;
    }
    return both;
  }

  /** The last directory lookupMany resolved: a merge that retries names one by one after a failed batch reads it once. */
  private lastListing: { dir: number; handles: Map<string, number | StrataError> } | undefined;

  /**
   * The listing already names every entry's inode: one pass over the
   * directory, then the inodes, instead of a directory search per name.
   * (ext2/3/4: the names are resolved as the kernel's lookups resolve them,
   * which differs from the listing past a damaged directory block.) One
   * unreadable object fails the batch; the merge then asks name by name,
   * answered from what is kept here, so the failure stays with its entry.
   */
  async lookupMany(dir: LayerObject, names: readonly Buffer[]): Promise<(LayerObject | undefined)[]> {
    const dirIno = this.inoOf(dir);
    let handles = this.lastListing?.dir === dirIno ? this.lastListing.handles : undefined;
    if (!handles) {
      handles = new Map<string, number | StrataError>();
      let listed: Buffer[];
      let found: (number | undefined | StrataError)[];
      const both = this.takeListed(dirIno) ?? (this.ext4 ? await this.ext4.ext4.readdirResolved(dirIno) : undefined);
      if (both) {
        listed = both.entries.map((e) => e.name);
        found = both.resolved;
      } else {
        const entries = await this.fs.readdir(dirIno);
        listed = entries.map((e) => e.name);
        found = entries.map((e) => e.handle);
      }
      listed.forEach((n, i) => {
        // Listed, yet a lookup does not find it (a hash index pointing elsewhere): the kernel's ls shows it, its stat fails.
        const h = found[i] ?? StrataError.notFound(`ext4: directory ${dirIno} lists ${printable(n)}, but a lookup does not find it`);
        handles?.set(n.toString('latin1'), h);
      });
      this.lastListing = { dir: dirIno, handles };
    }
    const known = handles;
    const out: (LayerObject | undefined)[] = [];
    for (let i = 0; i < names.length; i += LOOKUP_BATCH) {
      const batch = names.slice(i, i + LOOKUP_BATCH).map(async (n) => {
        const h = known.get(n.toString('latin1'));
        if (h === undefined) return undefined;
        if (typeof h !== 'number') throw h;
        return this.object(await this.fs.node(h));
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

  /** The filesystem's extents of the file, through the volume's place on the disk and the image chain's map. */
  extentMap(obj: LayerObject, offset: number, length: number): Promise<ExtentRun[]> {
    return imageExtentMap(this.fs, this.inoOf(obj), this.vol, Number(obj.st.size), offset, length);
  }

  locate(obj: LayerObject): Buffer {
    return Buffer.from(String(this.inoOf(obj)));
  }

  readLocated(location: Buffer, offset: number, length: number): Promise<Buffer> {
    const text = location.toString('latin1');
    if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) return Promise.reject(StrataError.io(`cached location ${JSON.stringify(text)} is not an object handle`));
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
    if (!(base instanceof ImageSource) || base === this || !base.ext4 || !this.ext4) return undefined;
    const backing = this.vol.image.backingFile;
    if (backing === undefined || backing !== base.imageFile) return undefined;
    const [a, b] = [base.ext4.ext4, this.ext4.ext4];
    if (
      !base.vol.contiguous ||
      !this.vol.contiguous ||
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
      if (!this.ext4) return Promise.reject(StrataError.unsupported('block-level deltas are read for ext2/3/4 only'));
      const building = ParentIndex.build(this.ext4.ext4, this.rootIno);
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

  private object(node: FsNode): LayerObject {
    return { layer: this, ref: node.handle, st: this.stat(node) };
  }

  private devFor(index: number): bigint {
    if (index === 0) return this.dev;
    let dev = this.devs.get(index);
    if (dev === undefined) {
      dev = devOf(`${this.identity}/${index}`);
      this.devs.set(index, dev);
    }
    return dev;
  }

  private stat(i: FsNode): SourceStat {
    return {
      dev: this.devFor(i.devIndex),
      ino: BigInt(i.ino),
      mode: BigInt(i.mode),
      nlink: BigInt(i.nlink),
      uid: BigInt(i.uid),
      gid: BigInt(i.gid),
      rdev: BigInt(i.rdev),
      size: BigInt(i.size),
      blocks: BigInt(i.blocks),
      blksize: BigInt(i.blksize),
      atimeNs: i.atimeNs,
      mtimeNs: i.mtimeNs,
      ctimeNs: i.ctimeNs,
    };
  }
}

function devOf(identity: string): bigint {
  return BigInt(`0x${createHash('sha256').update(identity).digest('hex').slice(0, 13)}`);
}

/** The handle of a layer's root inside the filesystem; every name on the way must be a directory (no symlinks followed). */
async function resolveRoot(fs: Filesystem, filesystemPath: string, image: string): Promise<number> {
  let ino = fs.rootHandle;
  for (const name of splitPath(Buffer.from(filesystemPath))) {
    const next = await fs.lookup(ino, name);
    if (next === undefined) throw StrataError.notFound(`path ${filesystemPath} does not exist in disk image ${image}`);
    const inode = await fs.node(next);
    if (!isDirMode(inode.mode)) throw StrataError.notDir(`path ${printable(Buffer.from(filesystemPath))} in disk image ${image} is not a directory`);
    ino = next;
  }
  return ino;
}
