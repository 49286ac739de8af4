import { LRUCache } from 'lru-cache';
import { Errno, StrataError } from '@strata/errors';
import type { ByteSource, FileExtent, Filesystem, FilesystemOptions, FsDirEntry, FsNode, FsStatFs, FsXattr } from '@strata/filesystem';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '@strata/posix';
import { AttrFlag } from './attr-entry';
import { readAttrs } from './attrs';
import { forkExtents } from './bmap-btree';
import { corrupt, guarded } from './errors';
import type { DirEntry } from './directory-entry';
import { listDirectory } from './directory';
import type { Extent } from './extent';
import { fileExtentRuns } from './file-extent-map';
import { readFileRange } from './fork-blocks';
import { inodeClusterBlocks, locateInode } from './geometry';
import { DiFlag, XfsInode, parseInode, rdevOf } from './inode';
import { inspectLog, logArea } from './log/log-head';
import { readRecords } from './log/log-records';
import { replayLog } from './log/log-replay';
import { TransactionAssembler } from './log/log-transactions';
import { SectorOverlay } from './log/sector-overlay';
import { MetadataReader } from './metadata-reader';
import { aclFromDisk } from './posix-acl';
import { computeStatFs } from './statfs';
import { formatUuid, parseSuperblock } from './superblock';
import { readSymlink } from './symlink';
import type { Volume } from './volume';

const DEFAULT_CACHE_BYTES = 32 * 1024 * 1024;
/** A single read() returns at most this much (a short read, as pread may). */
const MAX_READ = 256 * 1024 * 1024;
const NAME_MAX = 255;
const PAGE_SIZE = 4096;
const SB_READ = 64 * 1024;
const LOG_INCOMPAT_XATTRS = 0x1;
const LOG_INCOMPAT_EXCHMAPS = 0x2;
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

interface Listing {
  entries: DirEntry[];
  /** The '..' entry. */
  parent?: number;
  byName?: Map<string, number>;
}

/**
 * A read-only XFS (v4 and v5) reader over any ByteSource. Handles are inode
 * numbers. Answers follow the kernel's read-only mount of the same image.
 */
export class Xfs implements Filesystem {
  readonly type = 'xfs' as const;
  readonly rootHandle: number;
  readonly blockSize: number;
  readonly label: string;
  readonly uuid: string;
  readonly needsRecovery: boolean;

  private readonly inodes: LRUCache<number, XfsInode>;
  private readonly extents: LRUCache<number, Extent[]>;
  private readonly listings: LRUCache<number, Listing>;
  private readonly attrLists: LRUCache<number, FsXattr[]>;
  private stat: Promise<FsStatFs> | undefined;
  private readonly clusterBlocks: number;

  private constructor(
    private readonly vol: Volume,
    needsRecovery: boolean,
    private readonly recovered: boolean,
    cacheBytes: number,
    private readonly pendingFreeBlocks = 0,
  ) {
    this.rootHandle = vol.sb.rootIno;
    this.blockSize = vol.sb.blockSize;
    this.label = vol.sb.label;
    this.uuid = formatUuid(vol.sb.uuid);
    this.needsRecovery = needsRecovery;
    this.clusterBlocks = inodeClusterBlocks(vol.sb);
    const share = Math.max(1 << 20, Math.floor(cacheBytes / 4));
    this.inodes = new LRUCache({ maxSize: share, sizeCalculation: () => vol.sb.inodeSize + 256 });
    this.extents = new LRUCache({ maxSize: share, sizeCalculation: (e) => e.length * 64 + 64 });
    this.listings = new LRUCache({ maxSize: share, sizeCalculation: (l) => l.entries.reduce((n, e) => n + e.name.length + 96, 64) });
    this.attrLists = new LRUCache({ maxSize: share, sizeCalculation: (l) => l.reduce((n, x) => n + x.name.length + x.value.length + 64, 64) });
  }

  static async open(source: ByteSource, options: FilesystemOptions = {}): Promise<Xfs> {
    const log = options.log ?? ((): void => undefined);
    return guarded(log, 'open', async () => {
      const journal = options.journal ?? 'replay';
      if (journal !== 'replay' && journal !== 'ignore') throw new StrataError(Errno.EINVAL, `xfs: journal option must be 'replay' or 'ignore', not ${String(journal)}`);
      if (source.size < 512) throw new StrataError(Errno.EINVAL, 'no XFS filesystem (bad magic): volume too small');
      let head: Buffer;
      try {
        head = await source.read(0, Math.min(SB_READ, source.size));
      } catch (err) {
        if (err instanceof StrataError) throw err;
        throw new StrataError(Errno.EIO, `xfs: the superblock could not be read: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      const sb = parseSuperblock(head, source.size);
      const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
      const limit = sb.dblocks * sb.blockSize;
      const vol: Volume = { sb, reader: new MetadataReader(source, limit, Math.floor(cacheBytes / 2)), log };
      const logState = await inspectLog(vol);
      if (logState.clean) return new Xfs(vol, false, false, cacheBytes);
      if (journal === 'ignore') {
        log({ event: 'xfs.log', reason: 'the log needs recovery; read as on disk', head: logState.head, tail: logState.tail });
        return new Xfs(vol, true, false, cacheBytes);
      }
      return Xfs.recover(source, vol, logState.tail, logState.head, cacheBytes);
    });
  }

  /**
   * Replays the log into an in-memory overlay (the image is never written),
   * then reads the superblock again through it, as the kernel's mount does
   * after recovery, with the summary counters recomputed from the AG headers.
   */
  private static async recover(source: ByteSource, disk: Volume, tail: number, head: number, cacheBytes: number): Promise<Xfs> {
    const { sb, log } = disk;
    // Log items of features the log may carry (logged xattrs, exchanged mappings) are known; others cannot be replayed.
    const unknownLogFeatures = sb.logIncompat & ~(LOG_INCOMPAT_XATTRS | LOG_INCOMPAT_EXCHMAPS);
    if (unknownLogFeatures) throw new StrataError(Errno.EOPNOTSUPP, `xfs: unsupported log features 0x${unknownLogFeatures.toString(16)} in a log that needs recovery`);
    const overlay = new SectorOverlay();
    const limit = sb.dblocks * sb.blockSize;
    const assembler = new TransactionAssembler();
    const records = await readRecords(logArea(disk), tail, head, sb.crc, (r) => assembler.add(r));
    const transactions = assembler.committed;
    const view = new MetadataReader(source, limit, 0, overlay);
    const done = await replayLog(sb, transactions, (offset, length) => view.data(offset, length, 'log replay'), overlay, limit);
    const replayedSb = parseSuperblock(await view.data(0, Math.min(SB_READ, limit), 'superblock'), source.size);
    if (replayedSb.blockSize !== sb.blockSize || replayedSb.agBlocks !== sb.agBlocks || replayedSb.dblocks !== sb.dblocks) {
      throw corrupt('superblock', 'the log changes the geometry (a grown filesystem): not supported');
    }
    log({ event: 'xfs.log', reason: 'log replayed in memory', records, transactions: transactions.length, buffers: done.buffers, inodes: done.inodes, sectors: overlay.size });
    if (done.pendingIntents.length > 0) {
      // They only move space between free and used: the tree is complete; statfs counts the extents they free.
      log({ event: 'xfs.log', reason: 'unfinished intents left to the kernel\'s recovery', intents: done.pendingIntents, freeBlocks: done.pendingFreeBlocks });
    }
    const vol: Volume = { sb: replayedSb, reader: new MetadataReader(source, limit, Math.floor(cacheBytes / 2), overlay), log };
    return new Xfs(vol, true, true, cacheBytes, done.pendingFreeBlocks);
  }

  /** Reads, checks and decodes an inode as the kernel's iget does; ENOENT for a free inode. */
  private async inode(handle: number): Promise<XfsInode> {
    const hit = this.inodes.get(handle);
    if (hit) return hit;
    const { sb } = this.vol;
    if (!Number.isSafeInteger(handle) || handle <= 0) throw new StrataError(Errno.EINVAL, `xfs: bad handle ${handle}`);
    const loc = locateInode(sb, handle);
    if (!loc) throw corrupt(`inode ${handle}`, 'number outside the filesystem');
    // The whole inode cluster is read and cached, as the kernel reads it: a walk finds its neighbours there.
    const clusterStart = Math.floor(loc.agbno / this.clusterBlocks) * this.clusterBlocks;
    const clusterEnd = Math.min(clusterStart + this.clusterBlocks, sb.agBlocks, sb.dblocks - loc.agno * sb.agBlocks);
    const base = (loc.agno * sb.agBlocks + clusterStart) * sb.blockSize;
    const mb = await this.vol.reader.metadata(base, (clusterEnd - clusterStart) * sb.blockSize, `inode ${handle}`);
    const at = loc.offset - base;
    const raw = Buffer.from(mb.data.subarray(at, at + sb.inodeSize));
    const inode = parseInode(sb, handle, raw);
    if (!inode) throw new StrataError(Errno.ENOENT, `xfs: inode ${handle} is free`);
    this.inodes.set(handle, inode);
    return inode;
  }

  private async dataExtents(inode: XfsInode): Promise<Extent[]> {
    const hit = this.extents.get(inode.ino);
    if (hit) return hit;
    const extents = await forkExtents(this.vol, inode, 'data');
    this.extents.set(inode.ino, extents);
    return extents;
  }

  private async directory(handle: number): Promise<XfsInode> {
    const inode = await this.inode(handle);
    if ((inode.mode & S_IFMT) !== S_IFDIR) throw new StrataError(Errno.ENOTDIR, `xfs: inode ${handle} is not a directory`);
    return inode;
  }

  private async listing(dir: XfsInode): Promise<Listing> {
    const hit = this.listings.get(dir.ino);
    if (hit) return hit;
    const listing: Listing = await listDirectory(this.vol, dir);
    this.listings.set(dir.ino, listing);
    return listing;
  }

  node(handle: number): Promise<FsNode> {
    return guarded(this.vol.log, 'node', async () => {
      const i = await this.inode(handle);
      const type = i.mode & S_IFMT;
      const device = type === S_IFCHR || type === S_IFBLK;
      return {
        handle,
        ino: i.ino,
        devIndex: 0,
        mode: i.mode,
        uid: i.uid,
        gid: i.gid,
        nlink: i.nlink,
        size: i.size,
        rdev: device ? rdevOf(i.dev) : 0,
        blocks: i.nblocks * (this.vol.sb.blockSize / 512),
        blksize: device ? PAGE_SIZE : Math.max(PAGE_SIZE, this.vol.sb.blockSize),
        atimeNs: i.atimeNs,
        mtimeNs: i.mtimeNs,
        ctimeNs: i.ctimeNs,
        ...(i.crtimeNs === undefined ? {} : { crtimeNs: i.crtimeNs }),
      };
    });
  }

  lookup(dir: number, name: Buffer): Promise<number | undefined> {
    return guarded(this.vol.log, 'lookup', async () => {
      if (name.length > NAME_MAX) throw new StrataError(Errno.ENAMETOOLONG, `xfs: name of ${name.length} bytes is too long`);
      const inode = await this.directory(dir);
      if (name.length === 0) return undefined;
      if (name.equals(DOT)) return dir;
      const listing = await this.listing(inode);
      if (name.equals(DOTDOT)) return listing.parent === -1 ? undefined : listing.parent;
      if (!listing.byName) {
        const byName = new Map<string, number>();
        for (const e of listing.entries) byName.set(e.name.toString('latin1'), e.ino);
        listing.byName = byName;
      }
      const ino = listing.byName.get(name.toString('latin1'));
      if (ino === -1) throw new StrataError(Errno.EOVERFLOW, `xfs: inode number of ${JSON.stringify(name.toString())} is beyond 2^53`);
      return ino;
    });
  }

  readdir(dir: number): Promise<FsDirEntry[]> {
    return guarded(this.vol.log, 'readdir', async () => {
      const listing = await this.listing(await this.directory(dir));
      return listing.entries.map((e) => {
        if (e.ino === -1) throw new StrataError(Errno.EOVERFLOW, `xfs: directory ${dir}: inode number of ${JSON.stringify(e.name.toString())} is beyond 2^53`);
        return { name: e.name, handle: e.ino, type: e.type };
      });
    });
  }

  readlink(handle: number): Promise<Buffer> {
    return guarded(this.vol.log, 'readlink', async () => {
      const inode = await this.inode(handle);
      if ((inode.mode & S_IFMT) !== S_IFLNK) throw new StrataError(Errno.EINVAL, `xfs: inode ${handle} is not a symlink`);
      return readSymlink(this.vol, inode);
    });
  }

  read(handle: number, offset: number, length: number): Promise<Buffer> {
    return guarded(this.vol.log, 'read', async () => {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new StrataError(Errno.EINVAL, `xfs: bad read range ${offset}+${length}`);
      }
      const inode = await this.inode(handle);
      const type = inode.mode & S_IFMT;
      if (type === S_IFDIR) throw new StrataError(Errno.EISDIR, `xfs: inode ${handle} is a directory`);
      if (type !== S_IFREG) throw new StrataError(Errno.EINVAL, `xfs: inode ${handle} is not a regular file`);
      if (offset >= inode.size) return Buffer.alloc(0);
      const n = Math.min(length, inode.size - offset, MAX_READ);
      return readFileRange(this.vol, await this.dataExtents(inode), offset, n, `data of inode ${handle}`);
    });
  }

  /** Where bytes of a regular file lie on the volume (the seam's fileExtents): checked as read() checks. */
  fileExtents(handle: number, offset: number, length: number): Promise<FileExtent[]> {
    return guarded(this.vol.log, 'fileExtents', async () => {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new StrataError(Errno.EINVAL, `xfs: bad range ${offset}+${length}`);
      }
      const inode = await this.inode(handle);
      const type = inode.mode & S_IFMT;
      if (type === S_IFDIR) throw new StrataError(Errno.EISDIR, `xfs: inode ${handle} is a directory`);
      if (type !== S_IFREG) throw new StrataError(Errno.EINVAL, `xfs: inode ${handle} is not a regular file`);
      const n = Math.max(0, Math.min(length, inode.size - offset, MAX_READ));
      if (n === 0) return [];
      // A realtime file's blocks are on the realtime device, not this volume.
      if (inode.flags & DiFlag.REALTIME) return [{ kind: 'unmapped', length: n, reason: 'realtime device' }];
      const extents = await this.dataExtents(inode);
      return fileExtentRuns(extents, this.vol.sb.blockSize, (o, l) => this.vol.reader.replaced(o, l), offset, n);
    });
  }

  /** Parsed once per inode and kept (a caller asks for the list, then each value); every call gets its own copies. */
  xattrs(handle: number): Promise<FsXattr[]> {
    return guarded(this.vol.log, 'xattrs', async () => {
      let list = this.attrLists.get(handle);
      if (!list) {
        list = await this.readXattrs(handle);
        this.attrLists.set(handle, list);
      }
      return list.map((x) => ({ name: x.name, value: Buffer.from(x.value) }));
    });
  }

  private async readXattrs(handle: number): Promise<FsXattr[]> {
    const inode = await this.inode(handle);
    const out: FsXattr[] = [];
    for (const e of await readAttrs(this.vol, inode)) {
      if (e.flags & AttrFlag.PARENT) continue;
      const value = e.value ?? Buffer.alloc(0);
      const name = e.name.toString('utf8');
      if (e.flags & AttrFlag.ROOT) {
        // xfs_xattr_put_listent shows an ACL both as its system.* name and, to CAP_SYS_ADMIN, as the raw trusted.* attribute.
        const acl = name === 'SGI_ACL_FILE' ? 'system.posix_acl_access' : name === 'SGI_ACL_DEFAULT' ? 'system.posix_acl_default' : undefined;
        if (acl) {
          try {
            out.push({ name: acl, value: aclFromDisk(value, this.vol.sb.crc, `${acl} of inode ${handle}`) });
          } catch (err) {
            // A malformed ACL costs that attribute only: the kernel lists it, and only its getxattr fails.
            if (!(err instanceof StrataError)) throw err;
            this.vol.log({ event: 'xfs.damage', structure: 'POSIX ACL', ino: handle, name: acl, reason: err.message });
          }
        }
        out.push({ name: `trusted.${name}`, value });
      } else if (e.flags & AttrFlag.SECURE) {
        out.push({ name: `security.${name}`, value });
      } else {
        out.push({ name: `user.${name}`, value });
      }
    }
    return out;
  }

  /** Computed once, at the first call (it reads every AG header). A failure is not kept: the next call tries again. */
  statfs(): Promise<FsStatFs> {
    return guarded(this.vol.log, 'statfs', async () => {
      this.stat ??= computeStatFs(this.vol, this.recovered, this.pendingFreeBlocks);
      try {
        return { ...(await this.stat) };
      } catch (err) {
        this.stat = undefined;
        throw err;
      }
    });
  }
}
