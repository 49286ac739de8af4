import { Errno, StrataError } from '@strata/errors';
import type { ByteSource, FileType, Filesystem, FilesystemOptions, FsDirEntry, FsNode, FsStatFs, FsXattr } from '@strata/filesystem';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '@strata/posix';
import { readAttr } from './attr-data';
import { AttrType } from './attribute';
import { BOOT_SECTOR_SIZE, parseBootSector } from './boot-sector';
import { DirectoryIndex, IndexEntry, notADirectory } from './directory-index';
import { corrupt, guarded } from './errors';
import { Namespace } from './file-name';
import { Inode, findAttr, firstFileName, loadInode, namedStreams } from './inode';
import { fuseRdev, mayBeInterix, parseInterix } from './interix';
import { Lru } from './lru';
import { Mft } from './mft';
import { MAX_REPARSE, PathResolver, ReparsePoint, ReparseTag, badReparseTarget, symlinkTarget, validReparse } from './reparse';
import { FileAttr, ntfsTimeToNs } from './standard-information';
import { computeStatFs } from './statfs';
import { Upcase } from './upcase';
import { bytesToUtf16, utf16ToBytes } from './unicode';
import { VOLUME_IS_DIRTY, logfileUnclean, volumeInfo } from './volume-info';
import type { Volume } from './volume';

export interface NtfsOptions extends FilesystemOptions {
  /**
   * Where ntfs-3g would be mounted: it renders junctions and absolute
   * symlinks as absolute paths under its mount point. Default '' (the
   * volume seen as the root: targets start with "/").
   */
  mountPoint?: string;
}

const DEFAULT_CACHE_BYTES = 32 * 1024 * 1024;
/** A single read() returns at most this much (a short read, as pread may). */
const MAX_READ = 256 * 1024 * 1024;
/** NTFS_MAX_NAME_LEN in UTF-16 units: ntfs-3g's lookup answers ENAMETOOLONG past it. */
const NTFS_NAME_MAX = 255;
/** FUSE's FUSE_NAME_MAX: longer names never reach ntfs-3g. */
const FUSE_NAME_MAX = 1024;
/** The kernel refuses xattr values larger than XATTR_SIZE_MAX. */
const XATTR_SIZE_MAX = 65536;
const ROOT = 5;
/** Records 0-15 are the metafiles ($MFT ... $Extend and reserved ones): ntfs-3g never lists them. */
const FIRST_USER = 16;
const RECORD_MFT = 0;
const RECORD_LOGFILE = 2;
const RECORD_VOLUME = 3;
const RECORD_BITMAP = 6;
const RECORD_UPCASE = 10;
/** What ntfs-3g shows for a mount as root without uid=/gid=/umask= options. */
const OWNER = 0;
const BLKSIZE = 4096;
/** IO_REPARSE_PLUGIN_SELECT. */
const PLUGIN_SELECT = 0xffff0fff;

/** stat fields of one file as ntfs-3g's getattr computes them. */
interface Shape {
  mode: number;
  size: number;
  blocks: number;
  rdev: number;
  nlink: number;
  uid: number;
  gid: number;
  /** The symlink target, when the file shows as one. */
  target?: Buffer;
}

export class Ntfs implements Filesystem {
  readonly type = 'ntfs' as const;
  readonly rootHandle = ROOT;
  readonly blockSize: number;
  readonly label: string;
  readonly uuid: string;
  readonly needsRecovery: boolean;
  private readonly inodes: Lru<number, Inode>;
  private readonly indexBlocks: Lru<string, IndexEntry[]>;
  private statCache: Promise<FsStatFs> | undefined;

  private constructor(
    private readonly vol: Volume,
    private readonly mft: Mft,
    private readonly upcase: Upcase,
    private readonly mountPoint: Buffer,
    info: { label: string; needsRecovery: boolean },
    cacheBytes: number,
  ) {
    this.blockSize = vol.boot.clusterSize;
    this.uuid = vol.boot.serial;
    this.label = info.label;
    this.needsRecovery = info.needsRecovery;
    this.inodes = new Lru(cacheBytes / 2);
    this.indexBlocks = new Lru(cacheBytes / 2);
  }

  static async open(source: ByteSource, options: NtfsOptions = {}): Promise<Ntfs> {
    const log = options.log ?? ((): void => undefined);
    return guarded(log, 'open', async () => {
      const journal = options.journal ?? 'replay';
      if (journal !== 'replay' && journal !== 'ignore') throw new StrataError(Errno.EINVAL, `ntfs: journal option must be 'replay' or 'ignore', not ${String(journal)}`);
      if (source.size < BOOT_SECTOR_SIZE) throw new StrataError(Errno.EINVAL, 'no NTFS filesystem (bad magic): image too small');
      const boot = parseBootSector(await source.read(0, BOOT_SECTOR_SIZE), source.size);
      const vol: Volume = { source, boot, log };
      const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
      const mft = await Mft.open(vol, Math.floor(cacheBytes / 2));
      let upcase = Upcase.ascii();
      try {
        const up = findAttr(await loadInode(vol, mft, RECORD_UPCASE), AttrType.DATA);
        if (up) upcase = Upcase.fromData(await readAttr(vol, up, 0, 131072));
      } catch (err) {
        if (!(err instanceof StrataError)) throw err;
        log({ event: 'ntfs.upcase', reason: `$UpCase not read, ASCII case folding: ${err.message}` });
      }
      const volume = volumeInfo(await loadInode(vol, mft, RECORD_VOLUME));
      const reasons: string[] = [];
      if (volume.flags & VOLUME_IS_DIRTY) reasons.push('the volume is marked dirty');
      const fs = new Ntfs(vol, mft, upcase, Buffer.from(options.mountPoint ?? ''), { label: volume.label, needsRecovery: false }, Math.floor(cacheBytes / 2));
      try {
        if (await logfileUnclean(vol, await loadInode(vol, mft, RECORD_LOGFILE))) reasons.push('$LogFile holds an unclean restart area');
      } catch (err) {
        if (!(err instanceof StrataError)) throw err;
        log({ event: 'ntfs.logfile', reason: `$LogFile not checked: ${err.message}` });
      }
      if (await fs.hibernated()) reasons.push('Windows is hibernated on it (hiberfil.sys)');
      if (reasons.length === 0) return fs;
      log({ event: 'ntfs.unclean', reason: `${reasons.join('; ')}: served read-only as on disk, as ntfs-3g -o ro does` });
      return new Ntfs(vol, mft, upcase, fs.mountPoint, { label: volume.label, needsRecovery: true }, Math.floor(cacheBytes / 2));
    });
  }

  /**
   * ntfs_volume_check_hiberfile: hiberfil.sys in the root whose first 4 KiB
   * start with "hibr"/"HIBR", or that is shorter than 4 KiB (ntfs-3g's
   * "hibernated non-system partition").
   */
  private async hibernated(): Promise<boolean> {
    try {
      const n = await this.lookupName(ROOT, Buffer.from('hiberfil.sys', 'utf16le'));
      if (n === undefined) return false;
      const data = findAttr(await this.inode(n), AttrType.DATA);
      if (!data) return false;
      const head = await readAttr(this.vol, data, 0, 4096);
      const magic = head.toString('latin1', 0, 4);
      return head.length < 4096 || magic === 'hibr' || magic === 'HIBR';
    } catch (err) {
      if (!(err instanceof StrataError)) throw err;
      this.vol.log({ event: 'ntfs.hiberfile', reason: `hiberfil.sys not checked: ${err.message}` });
      return false;
    }
  }

  private async inode(n: number): Promise<Inode> {
    const hit = this.inodes.get(n);
    if (hit) return hit;
    if (!Number.isSafeInteger(n) || n < 0) throw new StrataError(Errno.EINVAL, `ntfs: bad handle ${n}`);
    const ino = await loadInode(this.vol, this.mft, n);
    let cost = 256;
    for (const a of ino.attributes) cost += 64 + (a.value?.length ?? 0) + 32 * (a.nonResident?.runs.length ?? 0);
    this.inodes.set(n, ino, cost);
    return ino;
  }

  private async directory(n: number): Promise<DirectoryIndex> {
    const ino = await this.inode(n);
    if (!ino.isDirectory || ino.si.fileAttributes & FileAttr.REPARSE_POINT) throw notADirectory(n);
    return DirectoryIndex.open(this.vol, ino, this.indexBlocks);
  }

  private async reparsePoint(ino: Inode): Promise<ReparsePoint | undefined> {
    const a = findAttr(ino, AttrType.REPARSE_POINT);
    if (!a || a.dataSize > MAX_REPARSE) return undefined;
    const raw = await readAttr(this.vol, a, 0, a.dataSize);
    return raw.length >= 4 ? { tag: raw.readUInt32LE(0), raw } : undefined;
  }

  private readonly resolver: PathResolver = {
    findIgnoreCase: async (dir, name) => {
      const b = Buffer.alloc(name.length * 2);
      name.forEach((u, i) => b.writeUInt16LE(u, 2 * i));
      const e = await (await this.directory(dir)).lookupIgnoreCase(b, this.upcase);
      if (!e?.key) return undefined;
      const units: number[] = [];
      for (let i = 0; i + 1 < e.key.name.length; i += 2) units.push(e.key.name.readUInt16LE(i));
      return { record: e.record, name: units };
    },
    kind: async (n) => {
      try {
        const ino = await this.inode(n);
        return { isDirectory: ino.isDirectory, isReparse: (ino.si.fileAttributes & FileAttr.REPARSE_POINT) !== 0 };
      } catch (err) {
        if (err instanceof StrataError) return undefined;
        throw err;
      }
    },
    parent: async (n) => {
      if (n === ROOT) return undefined;
      return firstFileName(await this.inode(n))?.parent;
    },
    driveDefined: async (letter) => {
      const upper = letter >= 0x61 && letter <= 0x7a ? letter - 0x20 : letter;
      const dir = await this.lookupName(ROOT, Buffer.from('.NTFS-3G', 'utf16le'));
      if (dir === undefined) return false;
      const b = Buffer.alloc(4);
      b.writeUInt16LE(upper, 0);
      b.writeUInt16LE(0x3a, 2);
      return (await this.lookupName(dir, b).catch(() => undefined)) !== undefined;
    },
  };

  /** A resolution that fails on damage counts as "not a valid link", as ntfs-3g's NULL return does. */
  private async target(ino: Inode, rp: ReparsePoint): Promise<Buffer | undefined> {
    try {
      return await symlinkTarget(this.resolver, ino.number, ino.isDirectory, ino.si.fileAttributes, rp, this.mountPoint);
    } catch (err) {
      if (err instanceof StrataError) return undefined;
      throw err;
    }
  }

  /** WSL's $LXDEV extended attribute: the device number of a WSL character or block device. */
  private async wslDevice(ino: Inode): Promise<number | undefined> {
    const ea = findAttr(ino, AttrType.EA);
    if (!ea || ea.dataSize > 65536) return undefined;
    const buf = await readAttr(this.vol, ea, 0, ea.dataSize);
    for (let off = 0, n = 0; off + 8 <= buf.length && n < 4096; n++) {
      const next = buf.readUInt32LE(off);
      const nameLength = buf[off + 5];
      const valueLength = buf.readUInt16LE(off + 6);
      if (next > 15 && nameLength === 6 && valueLength === 8 && off + 8 + 7 + 8 <= buf.length && buf.toString('latin1', off + 8, off + 15) === '$LXDEV\0') {
        return fuseRdev(BigInt(buf.readUInt32LE(off + 15)), BigInt(buf.readUInt32LE(off + 19)));
      }
      if (next <= 0) break;
      off += next;
    }
    return undefined;
  }

  /** ntfs_fuse_getattr, for a mount as root with default options. */
  private async shape(ino: Inode): Promise<Shape> {
    const flags = ino.si.fileAttributes;
    const data = findAttr(ino, AttrType.DATA);
    const allocated = data?.allocatedSize ?? 0;
    const base = { rdev: 0, nlink: ino.linkCount, uid: OWNER, gid: OWNER };
    if (flags & FileAttr.REPARSE_POINT) {
      // ntfs_get_reparse_point drops data failing valid_reparse_data: no plugin, and readlink names tag 0.
      const raw = await this.reparsePoint(ino);
      const rp = raw && validReparse(raw, ino.isDirectory, flags) ? raw : undefined;
      const bad = (blocks: number): Shape => ({ ...base, mode: S_IFLNK | 0o777, size: 34, blocks, target: badReparseTarget(rp?.tag ?? 0) });
      if (!rp) return bad(Math.floor((allocated + 511) / 512));
      // ntfs-3g picks its plugin by the tag without bits 12-15 (IO_REPARSE_PLUGIN_SELECT); the plugin then wants the exact tag.
      switch ((rp.tag & PLUGIN_SELECT) >>> 0) {
        case ReparseTag.MOUNT_POINT:
        case ReparseTag.SYMLINK:
        case ReparseTag.LX_SYMLINK: {
          const target = await this.target(ino, rp);
          const blocks = Math.floor((allocated + 511) / 512);
          return target ? { ...base, mode: S_IFLNK | 0o777, size: target.length, blocks, target } : bad(blocks);
        }
        case ReparseTag.AF_UNIX:
        case ReparseTag.LX_FIFO:
        case ReparseTag.LX_CHR:
        case ReparseTag.LX_BLK: {
          // wsl_getattr sets no permission bits and no st_blocks.
          if (rp.tag === ReparseTag.AF_UNIX) return { ...base, mode: S_IFSOCK, size: 0, blocks: 0 };
          if (rp.tag === ReparseTag.LX_FIFO) return { ...base, mode: S_IFIFO, size: 0, blocks: 0 };
          if (rp.tag !== ReparseTag.LX_CHR && rp.tag !== ReparseTag.LX_BLK) return bad(0);
          const rdev = await this.wslDevice(ino);
          if (rdev === undefined) return bad(0);
          return { ...base, mode: rp.tag === ReparseTag.LX_CHR ? S_IFCHR : S_IFBLK, size: 0, blocks: 0, rdev };
        }
        default:
          return bad(Math.floor((allocated + 511) / 512));
      }
    }
    if (ino.isDirectory) {
      let size = 0;
      let alloc = 0;
      if (data) {
        size = data.dataSize;
        alloc = allocated;
      } else {
        const ia = findAttr(ino, AttrType.INDEX_ALLOCATION, Buffer.from('$I30', 'utf16le'));
        if (ia) {
          size = ia.dataSize;
          alloc = ia.rawAllocatedSize;
        }
      }
      return { ...base, mode: S_IFDIR | 0o777, size, blocks: Math.floor(alloc / 512), nlink: 1 };
    }
    const shape: Shape = { ...base, mode: S_IFREG, size: data?.dataSize ?? 0, blocks: Math.floor((allocated + 511) / 512) };
    if (flags & FileAttr.SYSTEM) {
      // ntfs-3g's "nodata" path: a system file without $DATA gets no permission bits and no owner.
      if (!data) return { ...shape, uid: 0, gid: 0 };
      if (!(flags & FileAttr.HIDDEN)) {
        if (data.dataSize === 0) shape.mode = S_IFIFO;
        if (data.dataSize === 1) shape.mode = S_IFSOCK;
      }
      if (mayBeInterix(data.dataSize)) {
        const intx = parseInterix(await readAttr(this.vol, data, 0, data.dataSize));
        if (intx?.kind === 'symlink') {
          shape.mode = S_IFLNK;
          shape.size = intx.target.length;
          shape.target = intx.target;
        } else if (intx) {
          shape.mode = intx.kind === 'char' ? S_IFCHR : S_IFBLK;
          shape.rdev = fuseRdev(intx.major, intx.minor);
        }
      }
    }
    shape.mode |= 0o777;
    return shape;
  }

  node(handle: number): Promise<FsNode> {
    return guarded(this.vol.log, 'node', async () => {
      const ino = await this.inode(handle);
      const s = await this.shape(ino);
      return {
        handle,
        ino: handle,
        devIndex: 0,
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        nlink: s.nlink,
        size: s.size,
        rdev: s.rdev,
        blocks: s.blocks,
        blksize: BLKSIZE,
        atimeNs: ntfsTimeToNs(ino.si.access),
        mtimeNs: ntfsTimeToNs(ino.si.dataChange),
        ctimeNs: ntfsTimeToNs(ino.si.mftChange),
        crtimeNs: ntfsTimeToNs(ino.si.creation),
      };
    });
  }

  private async lookupName(dir: number, name: Buffer): Promise<number | undefined> {
    return (await (await this.directory(dir)).lookup(name, this.upcase))?.record;
  }

  lookup(dir: number, name: Buffer): Promise<number | undefined> {
    return guarded(this.vol.log, 'lookup', async () => {
      if (name.length > FUSE_NAME_MAX) throw new StrataError(Errno.ENAMETOOLONG, `ntfs: name of ${name.length} bytes is too long`);
      const index = await this.directory(dir);
      const units = bytesToUtf16(name);
      if (!units || units.length === 0 || name.equals(Buffer.from('.')) || name.equals(Buffer.from('..'))) return undefined;
      if (units.length > 2 * NTFS_NAME_MAX) throw new StrataError(Errno.ENAMETOOLONG, `ntfs: name of ${units.length / 2} UTF-16 units is too long`);
      return (await index.lookup(units, this.upcase))?.record;
    });
  }

  readdir(dir: number): Promise<FsDirEntry[]> {
    return guarded(this.vol.log, 'readdir', async () => {
      const out: FsDirEntry[] = [];
      for (const e of await (await this.directory(dir)).all()) {
        const key = e.key!;
        if (key.namespace === Namespace.DOS || e.record === ROOT || e.record < FIRST_USER) continue;
        let type: FileType = 'file';
        if (key.fileAttributes & (FileAttr.REPARSE_POINT | FileAttr.SYSTEM)) type = 'unknown';
        else if (key.fileAttributes & FileAttr.I30_INDEX_PRESENT) type = 'dir';
        out.push({ name: utf16ToBytes(key.name), handle: e.record, type });
      }
      return out;
    });
  }

  readlink(handle: number): Promise<Buffer> {
    return guarded(this.vol.log, 'readlink', async () => {
      const s = await this.shape(await this.inode(handle));
      if ((s.mode & S_IFMT) !== S_IFLNK || !s.target) throw new StrataError(Errno.EINVAL, `ntfs: MFT record ${handle} is not a symlink`);
      return s.target;
    });
  }

  read(handle: number, offset: number, length: number): Promise<Buffer> {
    return guarded(this.vol.log, 'read', async () => {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new StrataError(Errno.EINVAL, `ntfs: bad read range ${offset}+${length}`);
      }
      const ino = await this.inode(handle);
      const type = (await this.shape(ino)).mode & S_IFMT;
      if (type === S_IFDIR) throw new StrataError(Errno.EISDIR, `ntfs: MFT record ${handle} is a directory`);
      if (type !== S_IFREG) throw new StrataError(Errno.EINVAL, `ntfs: MFT record ${handle} is not a regular file`);
      const data = findAttr(ino, AttrType.DATA);
      if (!data) return Buffer.alloc(0);
      return readAttr(this.vol, data, offset, Math.min(length, MAX_READ));
    });
  }

  xattrs(handle: number): Promise<FsXattr[]> {
    return guarded(this.vol.log, 'xattrs', async () => {
      const ino = await this.inode(handle);
      if (!(await this.userXattrsAllowed(ino))) return [];
      const out: FsXattr[] = [];
      for (const s of namedStreams(ino)) {
        const name = utf16ToBytes(s.name).toString('utf8');
        if (name.length > 9 && name.startsWith('ntfs-3g.')) continue;
        if (s.dataSize > XATTR_SIZE_MAX) {
          this.vol.log({ event: 'ntfs.xattr', handle, name, reason: `stream of ${s.dataSize} bytes is larger than an xattr value may be` });
          continue;
        }
        out.push({ name: `user.${name}`, value: await readAttr(this.vol, s, 0, s.dataSize) });
      }
      return out;
    });
  }

  /** user_xattrs_allowed: streams show on files and directories only (not on special files or metafiles). */
  private async userXattrsAllowed(ino: Inode): Promise<boolean> {
    const flags = ino.si.fileAttributes;
    if (!(flags & (FileAttr.SYSTEM | FileAttr.REPARSE_POINT)) || ino.number === ROOT) return true;
    if (flags & FileAttr.REPARSE_POINT) return false;
    if (ino.number < FIRST_USER) return false;
    const type = (await this.shape(ino)).mode & S_IFMT;
    return type === S_IFREG || type === S_IFDIR;
  }

  statfs(): Promise<FsStatFs> {
    this.statCache ??= guarded(this.vol.log, 'statfs', async () => {
      const bitmap = findAttr(await this.inode(RECORD_BITMAP), AttrType.DATA);
      const mftBitmap = findAttr(await this.inode(RECORD_MFT), AttrType.BITMAP);
      if (!bitmap || !mftBitmap) throw corrupt('volume', 'no $Bitmap data or no $MFT bitmap');
      return computeStatFs(this.vol, bitmap, mftBitmap, this.mft.recordCount);
    });
    const pending = this.statCache;
    pending.catch(() => {
      if (this.statCache === pending) this.statCache = undefined;
    });
    return pending.then((s) => ({ ...s }));
  }
}
