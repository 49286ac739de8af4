import type { FileExtent } from '@strata/filesystem';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '@strata/posix';
import { Errno, StrataError } from '@strata/errors';
import { LRUCache } from 'lru-cache';
import { BlockReader } from './block-reader';
import { badChecksum, corrupt, refused, unreadable, unsupported } from './corruption';
import { listAndResolveLinear, listDirectory, lookupInDirectory, resolveInDirectory } from './directory';
import { checkExtentRoot } from './extent-tree';
import { Compat, Incompat, ext4Kind } from './features';
import { mapBlocks, readMapped } from './file-blocks';
import { fileExtentRuns } from './file-extents';
import { BG_INODE_UNINIT, GroupDescriptor, readGroupDescriptors } from './group-descriptors';
import { InodeFlag, InodeRecord, parseInode, verifyInodeChecksum } from './inode';
import { readRawInode } from './inode-table';
import { inlineBytes } from './inline-data';
import { JournalState, OpenJournal, openJournal } from './journal/journal';
import { aclFromDisk } from './posix-acl';
import { computeStatFs, overheadBlocks } from './statfs';
import { SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, Superblock, formatUuid, hasGroupDescCsum, hasIncompat, hasMetadataCsum, parseSuperblock } from './superblock';
import type { ByteSource, Ext4DirEntry, Ext4Event, Ext4Inode, Ext4InodeTable, Ext4Options, Ext4StatFs, Ext4Xattr } from './types';
import { Volume, checksumEvent } from './volume';
import { XattrEntry, XattrIndex, XATTR_SIZE_MAX, blockXattrs, inodeXattrs, verifyXattrBlock, xattrPrefix } from './xattr';

const DEFAULT_CACHE_BYTES = 32 * 1024 * 1024;
/** A single read() returns at most this much (a short read, as pread may). */
const MAX_READ = 256 * 1024 * 1024;
const NAME_MAX = 255;
/** Decoded inodes kept per reader (about 1 KiB each). */
const INODE_CACHE_ENTRIES = 8192;

/**
 * Turns an unexpected exception (a bounds check this reader lacks) into EIO
 * and reports it, so a corrupt image fails one call instead of the caller.
 */
async function guarded<T>(log: (event: Ext4Event) => void, op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StrataError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    log({ event: 'ext4.internal', op, message, stack: err instanceof Error ? err.stack : undefined });
    throw new StrataError(Errno.EIO, `ext4: ${op}: unexpected failure on corrupt data: ${message}`, { cause: err });
  }
}

const NO_JOURNAL: JournalState = { replayed: false, transactions: 0, blocks: 0, firstSequence: 0, nextSequence: 0, headBlock: 0 };

function makeVolume(sb: Superblock, reader: BlockReader, groups: readonly GroupDescriptor[], log: (event: Ext4Event) => void): Volume {
  const vol: Volume = {
    sb,
    reader,
    groups,
    log,
    onChecksumError: (ino, block, reason) => checksumEvent(vol, 'extent block', reason, { ino, block }),
  };
  return vol;
}

async function readSourceBlock(source: ByteSource, blockSize: number, block: number): Promise<Buffer> {
  const buf = await source.read(block * blockSize, blockSize);
  if (buf.length < blockSize) throw unreadable(`block ${block}`, 'short read (image truncated?)');
  return buf.length === blockSize ? buf : buf.subarray(0, blockSize);
}

export class Ext4 {
  readonly rootIno = 2;
  readonly blockSize: number;
  /** The RECOVER flag of the superblock on disk: the image was copied while mounted (or the guest crashed). */
  readonly needsRecovery: boolean;
  readonly label: string;
  readonly uuid: string;
  readonly inodeSize: number;
  readonly blocksCount: number;
  readonly journal: JournalState;
  /** What blkid calls it: ext4 with any feature ext3 lacks, ext3 with a journal, else ext2. */
  readonly kind: 'ext2' | 'ext3' | 'ext4';

  private constructor(
    private readonly vol: Volume,
    private readonly stat: Ext4StatFs,
    needsRecovery: boolean,
    private readonly openedJournal: OpenJournal | undefined,
  ) {
    this.blockSize = vol.sb.blockSize;
    this.needsRecovery = needsRecovery;
    this.label = vol.sb.label;
    this.uuid = formatUuid(vol.sb.uuid);
    this.kind = ext4Kind(vol.sb);
    this.inodeSize = vol.sb.inodeSize;
    this.blocksCount = vol.sb.blocksCount;
    this.journal = { ...(openedJournal?.state ?? NO_JOURNAL) };
  }

  static async open(source: ByteSource, options: Ext4Options = {}): Promise<Ext4> {
    const log = options.log ?? ((): void => undefined);
    return guarded(log, 'open', async () => {
      if (source.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) {
        throw new StrataError(Errno.EINVAL, 'no ext2/3/4 filesystem (bad magic): image too small');
      }
      const mode = options.journal ?? 'replay';
      if (mode !== 'replay' && mode !== 'ignore') throw new StrataError(Errno.EINVAL, `ext4: journal option must be 'replay' or 'ignore', not ${String(mode)}`);
      const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
      const raw = await source.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
      const diskSb = parseSuperblock(raw, source.size);
      const needsRecovery = hasIncompat(diskSb, Incompat.RECOVER);
      const diskReader = new BlockReader(source, diskSb.blockSize, diskSb.blocksCount, cacheBytes);
      const diskVol = makeVolume(diskSb, diskReader, await readGroupDescriptors(diskSb, diskReader), log);
      const onDisk = new Ext4(diskVol, computeStatFs(diskSb, diskVol.groups, 0), needsRecovery, undefined);

      // The kernel replays only when the RECOVER flag says the log holds what the filesystem lacks.
      const recover = needsRecovery && mode === 'replay';
      if (recover && diskSb.journalInum === 0 && (diskSb.compat & Compat.HAS_JOURNAL) !== 0) {
        // The log to replay is on another device (s_journal_uuid / s_journal_dev): the kernel's mount and e2fsck refuse without it.
        const uuid = formatUuid(raw.subarray(0xd0, 0xd0 + 16));
        throw unsupported(`external journal (journal device ${uuid}): the filesystem needs recovery from a journal that is not on this volume`);
      }
      let journal: OpenJournal | undefined;
      if (diskSb.journalInum !== 0) {
        try {
          journal = await onDisk.openJournal(source, recover);
        } catch (err) {
          if (recover || !(err instanceof StrataError)) throw err;
          log({ event: 'ext4.journal', reason: `journal not read: ${err.message}` });
        }
      }
      if (journal?.failedCommit !== undefined) {
        log({ event: 'ext4.journal', reason: `transaction ${journal.failedCommit} fails its commit checksum: recovery would refuse this journal` });
      }

      let vol = diskVol;
      if (journal?.replay) {
        // The superblock and group descriptors may themselves have been logged: read them again, replayed.
        const replayed = new BlockReader(source, diskSb.blockSize, diskSb.blocksCount, cacheBytes, journal.replay);
        const sbBlock = Math.floor(SUPERBLOCK_OFFSET / diskSb.blockSize);
        const at = SUPERBLOCK_OFFSET % diskSb.blockSize;
        const sb = parseSuperblock((await replayed.data(sbBlock, 1, 'superblock')).subarray(at, at + SUPERBLOCK_SIZE), source.size);
        if (sb.blockSize !== diskSb.blockSize) throw refused('superblock', `the journal's copy has ${sb.blockSize}-byte blocks, the disk's ${diskSb.blockSize}`);
        const reader = new BlockReader(source, sb.blockSize, sb.blocksCount, cacheBytes, journal.replay);
        vol = makeVolume(sb, reader, await readGroupDescriptors(sb, reader), log);
      }
      for (const g of vol.groups) {
        if (g.badReason) checksumEvent(vol, 'group descriptor', g.badReason, { block: g.group });
      }
      const fs = new Ext4(vol, computeStatFs(vol.sb, vol.groups, 0), needsRecovery, journal);
      let journalBlocks = 0;
      if (vol.sb.journalInum !== 0) {
        try {
          journalBlocks = Math.floor((await fs.record(vol.sb.journalInum)).stat.size / vol.sb.blockSize);
        } catch (err) {
          if (!(err instanceof StrataError)) throw err;
          log({ event: 'ext4.journal', reason: `cannot size the journal: ${err.message}` });
        }
      }
      return new Ext4(vol, computeStatFs(vol.sb, vol.groups, overheadBlocks(vol.sb, journalBlocks)), needsRecovery, journal);
    });
  }

  /** The journal inode as it is on disk (checked as ext4_get_journal_inode does), then the journal itself. */
  private async openJournal(source: ByteSource, recover: boolean): Promise<OpenJournal> {
    const { sb } = this.vol;
    const rec = await this.record(sb.journalInum);
    const what = `journal inode ${sb.journalInum}`;
    if (rec.stat.nlink === 0) throw refused(what, 'the journal inode is deleted');
    if ((rec.stat.mode & S_IFMT) !== S_IFREG || rec.stat.flags & (InodeFlag.ENCRYPT | InodeFlag.INLINE_DATA)) {
      throw refused(what, 'not a plain regular file');
    }
    return openJournal({
      blockSize: sb.blockSize,
      deviceBlocks: Math.floor(source.size / sb.blockSize),
      fileBlocks: Math.floor(rec.stat.size / sb.blockSize),
      map: (n) => mapBlocks(this.vol, rec, 0, n),
      readBlock: (pblk) => readSourceBlock(source, sb.blockSize, pblk),
      recover,
    });
  }

  /** replayedBlocks() as a set, built at the first fileExtents call. */
  private replayedSet: ReadonlySet<number> | undefined;

  /** Filesystem blocks whose content this reader takes from the journal, ascending. */
  replayedBlocks(): readonly number[] {
    return [...(this.openedJournal?.replay?.blocks ?? [])];
  }

  /**
   * For a disk a running guest keeps writing: reads the journal superblock
   * and the log block where the log seen at open ends, both straight from
   * the source. True when the superblock changed (the guest checkpointed or
   * started logging) or that block now starts a transaction the reader did
   * not see (the guest committed or started one since open). False without
   * a readable journal.
   */
  journalHeadChanged(): Promise<boolean> {
    return guarded(this.vol.log, 'journalHeadChanged', async () => (this.openedJournal ? this.openedJournal.headChanged() : false));
  }

  /** One filesystem block as this reader sees it (after replay), uncached. */
  block(n: number): Promise<Buffer> {
    return guarded(this.vol.log, 'block', async () => {
      if (!Number.isSafeInteger(n) || n < 0 || n >= this.vol.sb.blocksCount) {
        throw new StrataError(Errno.EINVAL, `ext4: block ${n} is outside the filesystem (${this.vol.sb.blocksCount} blocks)`);
      }
      return Buffer.from(await this.vol.reader.data(n, 1, `block ${n}`));
    });
  }

  /**
   * Where each group's inode table lives, limited to its initialised part:
   * with group descriptor checksums an INODE_UNINIT group has none and
   * bg_itable_unused inodes at the end of a table were never written. A
   * group this reader cannot read inodes of (bad descriptor checksum, table
   * outside the filesystem) reports 0 inodes.
   */
  inodeTables(): Ext4InodeTable[] {
    const { sb, groups } = this.vol;
    const tableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
    return groups.map((gd) => {
      let inodes = sb.inodesPerGroup;
      if (hasGroupDescCsum(sb)) inodes = gd.flags & BG_INODE_UNINIT ? 0 : Math.max(0, sb.inodesPerGroup - gd.itableUnused);
      if (gd.badReason || gd.inodeTable <= sb.firstDataBlock || gd.inodeTable + tableBlocks > sb.blocksCount) inodes = 0;
      return {
        group: gd.group,
        firstIno: gd.group * sb.inodesPerGroup + 1,
        inodes,
        block: gd.inodeTable,
        blocks: Math.ceil((inodes * sb.inodeSize) / sb.blockSize),
      };
    });
  }

  /**
   * Inodes decoded and checked, as the kernel keeps them in its inode cache:
   * a file read in many pieces is decoded once, not per read. The reader
   * never sees the image change (a LIVE layer reopens a new reader), so an
   * entry is never stale; failures are not kept (each call checks again).
   */
  private readonly records = new LRUCache<number, InodeRecord>({ max: INODE_CACHE_ENTRIES });

  /** Reads, verifies and decodes an inode the way the kernel's iget does (or finds it decoded). */
  private async record(ino: number): Promise<InodeRecord> {
    const hit = this.records.get(ino);
    if (hit) return hit;
    const rec = await this.decodeRecord(ino);
    this.records.set(ino, rec);
    return rec;
  }

  private async decodeRecord(ino: number): Promise<InodeRecord> {
    const { sb } = this.vol;
    const { raw, block } = await readRawInode(sb, this.vol.groups, this.vol.reader, ino);
    const rec = parseInode(sb, ino, Buffer.from(raw));
    const key = `inode:${ino}`;
    if (hasMetadataCsum(sb) && !block.verified.has(key)) {
      const reason = verifyInodeChecksum(sb, rec.raw, rec.csumSeed, rec.extraIsize);
      if (reason) {
        checksumEvent(this.vol, 'inode', reason, { ino });
        throw badChecksum(`inode ${ino}`, reason);
      }
      block.verified.add(key);
    }
    if (rec.fileAcl !== 0 && (rec.fileAcl <= sb.firstDataBlock || rec.fileAcl >= sb.blocksCount)) {
      throw corrupt(`inode ${ino}`, `xattr block ${rec.fileAcl} is outside the filesystem`);
    }
    const type = rec.stat.mode & S_IFMT;
    if (type === S_IFLNK && !(rec.stat.flags & (InodeFlag.INLINE_DATA | InodeFlag.ENCRYPT)) && this.isFastSymlink(rec)) {
      // __ext4_iget: a fast symlink's length must be 1..59 with a NUL right after it, else the inode is refused.
      const size = rec.stat.size;
      const target = rec.iBlock.subarray(0, Math.min(size + 1, 60));
      if (size === 0 || size >= 60 || target.indexOf(0) !== size) throw corrupt(`inode ${ino}`, `invalid fast symlink length ${size}`);
    }
    const mapped = type === S_IFREG || type === S_IFDIR || (type === S_IFLNK && !this.isFastSymlink(rec));
    if (mapped && !(rec.stat.flags & InodeFlag.INLINE_DATA) && rec.stat.flags & InodeFlag.EXTENTS) checkExtentRoot(sb, rec);
    return rec;
  }

  private isFastSymlink(rec: InodeRecord): boolean {
    if (rec.stat.flags & InodeFlag.EA_INODE) return rec.stat.size > 0 && rec.stat.size < 60;
    if (rec.stat.flags & InodeFlag.INLINE_DATA) return false;
    const eaBlocks = rec.fileAcl !== 0 ? this.blockSize / 512 : 0;
    return rec.stat.blocks - eaBlocks === 0;
  }

  private async directory(ino: number): Promise<InodeRecord> {
    const rec = await this.record(ino);
    if ((rec.stat.mode & S_IFMT) !== S_IFDIR) throw new StrataError(Errno.ENOTDIR, `ext4: inode ${ino} is not a directory`);
    return rec;
  }

  inode(ino: number): Promise<Ext4Inode> {
    return guarded(this.vol.log, 'inode', async () => ({ ...(await this.record(ino)).stat }));
  }

  lookup(dirIno: number, name: Buffer): Promise<number | undefined> {
    return guarded(this.vol.log, 'lookup', async () => {
      if (name.length > NAME_MAX) throw new StrataError(Errno.ENAMETOOLONG, `ext4: name of ${name.length} bytes is too long`);
      const dir = await this.directory(dirIno);
      if (name.length === 0) return undefined;
      return lookupInDirectory(this.vol, dir, name);
    });
  }

  /**
   * What lookups of these names in one directory give, each on its own: an
   * inode number, undefined (no such name) or the StrataError that lookup
   * fails with. One pass over a linear directory, however many names (a
   * listing's entries resolved as the kernel's lookups would resolve them).
   */
  resolve(dirIno: number, names: readonly Buffer[]): Promise<(number | undefined | StrataError)[]> {
    return guarded(this.vol.log, 'resolve', async () => {
      const dir = await this.directory(dirIno);
      return resolveInDirectory(this.vol, dir, names);
    });
  }

  /**
   * readdir() and resolve() of the names it lists, together: a linear
   * directory's blocks are read and parsed once for both (a walk asks both
   * of every directory); a hashed or inline one is listed, then resolved.
   */
  readdirResolved(dirIno: number): Promise<{ entries: Ext4DirEntry[]; resolved: (number | undefined | StrataError)[] }> {
    return guarded(this.vol.log, 'readdir', async () => {
      const dir = await this.directory(dirIno);
      const linear = await listAndResolveLinear(this.vol, dir);
      const raw = linear ? linear.entries : await listDirectory(this.vol, dir);
      const entries = raw.map((e) => ({ name: e.name, ino: e.ino, type: e.type }));
      return { entries, resolved: linear ? linear.resolved : await resolveInDirectory(this.vol, dir, raw.map((e) => e.name)) };
    });
  }

  readdir(dirIno: number): Promise<Ext4DirEntry[]> {
    return guarded(this.vol.log, 'readdir', async () => {
      const dir = await this.directory(dirIno);
      return (await listDirectory(this.vol, dir)).map((e) => ({ name: e.name, ino: e.ino, type: e.type }));
    });
  }

  private async content(rec: InodeRecord, offset: number, length: number): Promise<Buffer> {
    if (rec.stat.flags & InodeFlag.ENCRYPT) {
      throw new StrataError(Errno.EOPNOTSUPP, `ext4: inode ${rec.stat.ino} is encrypted (encrypt feature): not supported`);
    }
    const size = rec.stat.size;
    if (offset >= size) return Buffer.alloc(0);
    const n = Math.min(length, size - offset, MAX_READ);
    if (rec.stat.flags & InodeFlag.INLINE_DATA) {
      // Past the inline bytes, up to i_size, reads as zeros (as the kernel's inline readpage does).
      const out = Buffer.alloc(n);
      inlineBytes(rec, this.vol.sb.inodeSize).copy(out, 0, offset, offset + n);
      return out;
    }
    return readMapped(this.vol, rec, offset, n);
  }

  read(ino: number, offset: number, length: number): Promise<Buffer> {
    return guarded(this.vol.log, 'read', async () => {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new StrataError(Errno.EINVAL, `ext4: bad read range ${offset}+${length}`);
      }
      const rec = await this.record(ino);
      const type = rec.stat.mode & S_IFMT;
      if (type === S_IFDIR) throw new StrataError(Errno.EISDIR, `ext4: inode ${ino} is a directory`);
      if (type !== S_IFREG) throw new StrataError(Errno.EINVAL, `ext4: inode ${ino} is not a regular file`);
      return this.content(rec, offset, length);
    });
  }

  /** Where bytes of a regular file lie on the volume (the filesystem seam's fileExtents): checked as read() checks. */
  fileExtents(ino: number, offset: number, length: number): Promise<FileExtent[]> {
    return guarded(this.vol.log, 'fileExtents', async () => {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new StrataError(Errno.EINVAL, `ext4: bad range ${offset}+${length}`);
      }
      const rec = await this.record(ino);
      const type = rec.stat.mode & S_IFMT;
      if (type === S_IFDIR) throw new StrataError(Errno.EISDIR, `ext4: inode ${ino} is a directory`);
      if (type !== S_IFREG) throw new StrataError(Errno.EINVAL, `ext4: inode ${ino} is not a regular file`);
      const n = Math.max(0, Math.min(length, rec.stat.size - offset, MAX_READ));
      this.replayedSet ??= new Set(this.openedJournal?.replay?.blocks ?? []);
      return fileExtentRuns(this.vol, rec, this.replayedSet, offset, n);
    });
  }

  readlink(ino: number): Promise<Buffer> {
    return guarded(this.vol.log, 'readlink', async () => {
      const rec = await this.record(ino);
      if ((rec.stat.mode & S_IFMT) !== S_IFLNK) throw new StrataError(Errno.EINVAL, `ext4: inode ${ino} is not a symlink`);
      if (rec.stat.flags & InodeFlag.ENCRYPT) {
        throw new StrataError(Errno.EOPNOTSUPP, `ext4: symlink ${ino} is encrypted (encrypt feature): not supported`);
      }
      const size = rec.stat.size;
      if (!(rec.stat.flags & InodeFlag.INLINE_DATA) && this.isFastSymlink(rec)) {
        return Buffer.from(rec.iBlock.subarray(0, size));
      }
      // A slow symlink's target is one block at most; the kernel stops at the first NUL.
      const body = await this.content(rec, 0, Math.min(size, this.blockSize - 1));
      const nul = body.indexOf(0);
      return nul < 0 ? body : body.subarray(0, nul);
    });
  }

  private async xattrValue(owner: InodeRecord, e: XattrEntry): Promise<Buffer> {
    if (e.value) return e.value;
    if (!hasIncompat(this.vol.sb, Incompat.EA_INODE)) throw corrupt(`xattrs of inode ${owner.stat.ino}`, 'value in an inode without the ea_inode feature');
    const ea = await this.record(e.valueInum);
    if (!(ea.stat.flags & InodeFlag.EA_INODE) || ea.stat.size !== e.valueSize || e.valueSize > XATTR_SIZE_MAX) {
      throw corrupt(`xattrs of inode ${owner.stat.ino}`, `inode ${e.valueInum} is not a matching xattr value inode`);
    }
    return this.content(ea, 0, e.valueSize);
  }

  xattrs(ino: number): Promise<Ext4Xattr[]> {
    return guarded(this.vol.log, 'xattrs', async () => {
      const rec = await this.record(ino);
      const entries = inodeXattrs(rec, this.vol.sb.inodeSize);
      if (rec.fileAcl !== 0) {
        const mb = await this.vol.reader.metadata(rec.fileAcl, `xattr block of inode ${ino}`);
        if (hasMetadataCsum(this.vol.sb) && !mb.verified.has('xattr')) {
          const reason = verifyXattrBlock(mb.data, rec.fileAcl, this.vol.sb.checksumSeed);
          if (reason) {
            checksumEvent(this.vol, 'xattr block', reason, { ino, block: rec.fileAcl });
            throw badChecksum(`xattr block ${rec.fileAcl}`, reason);
          }
          mb.verified.add('xattr');
        }
        entries.push(...blockXattrs(mb.data, rec.fileAcl));
      }
      const out: Ext4Xattr[] = [];
      for (const e of entries) {
        const prefix = xattrPrefix(e.index);
        if (prefix === undefined) continue;
        const name = prefix + e.name.toString('utf8');
        let value = await this.xattrValue(rec, e);
        if (e.index === XattrIndex.POSIX_ACL_ACCESS || e.index === XattrIndex.POSIX_ACL_DEFAULT) {
          value = aclFromDisk(value, `${name} of inode ${ino}`);
        }
        out.push({ name, value });
      }
      return out;
    });
  }

  statfs(): Ext4StatFs {
    return { ...this.stat };
  }
}
