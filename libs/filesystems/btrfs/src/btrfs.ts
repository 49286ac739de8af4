import { Errno, StrataError } from '@strata/errors';
import type { ByteSource, Filesystem, FilesystemOptions, FsDirEntry, FsEvent, FsNode, FsStatFs, FsXattr } from '@strata/filesystem';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, fileTypeOf } from '@strata/posix';
import { KeyType, NAME_MAX, ObjectId } from './constants';
import { dirTypeName, parseDirItems, type DirItem } from './dir-item';
import { corrupt, guarded, safeU64 } from './errors';
import { FileData } from './file-data';
import { replayLog } from './log-replay';
import { STUB_TREE, decodeHandle, encodeHandle } from './handle';
import { parseInodeExtrefs, parseInodeRefs } from './inode-ref';
import { parseInodeItem, type InodeItem } from './inode-item';
import { U64_MAX, key } from './key';
import { nameHash } from './name-hash';
import { Subvolumes, type FsTree } from './subvolumes';
import { computeStatfs } from './statfs';
import { uuidText } from './superblock';
import { openVolume, type Volume } from './volume';

export type BtrfsOptions = FilesystemOptions;

/** A subvolume as `btrfs subvolume list` shows it, with its place in the top-level tree. */
export interface SubvolumeInfo {
  id: number;
  /** Path from the top level ('/' for id 5), as the kernel shows it under subvolid=5. */
  path: string;
  readOnly: boolean;
}

/** The directory the kernel shows for a subvolume entry whose subvolume cannot be entered from there. */
interface Stub {
  parent: number;
}

const MAX_STUBS = 1 << 20;
const MAX_DIR_ENTRIES = 1 << 24;
const MAX_XATTRS = 1 << 16;
const MAX_PATH_DEPTH = 4096;
const MAX_READ = 1 << 30;
const DEFAULT_CACHE = 32 << 20;

/** glibc makedev of the kernel dev_t btrfs stores (major in bits 20+, minor in the low 20). */
function rdevOf(raw: bigint): number {
  const v = Number(raw & 0xffff_ffffn);
  const major = v >>> 20;
  const minor = v & 0xfffff;
  return (minor & 0xff) + (major & 0xfff) * 0x100 + Math.floor(minor / 0x100) * 0x100000 + Math.floor(major / 0x1000) * 0x1_0000_0000;
}

/**
 * A read-only single-device btrfs. The root is the top-level subvolume (id
 * 5) as a `subvolid=5` mount shows it; every other subvolume and snapshot
 * is a directory inside it. Handles pack (subvolume id, objectid) (see
 * handle.ts); `devIndex` is the subvolume id, 0 for the kernel's stubs.
 */
export class Btrfs implements Filesystem {
  readonly type = 'btrfs' as const;
  readonly rootHandle: number;
  readonly blockSize: number;
  readonly label: string;
  readonly uuid: string;
  readonly needsRecovery: boolean;
  private readonly subvols: Subvolumes;
  private readonly data: FileData;
  private readonly stubs: Stub[] = [];
  private readonly stubIndex = new Map<string, number>();
  private readonly openedNs = BigInt(Date.now()) * 1_000_000n;

  private constructor(
    private readonly vol: Volume,
    source: ByteSource,
    private readonly log: (e: FsEvent) => void,
  ) {
    this.subvols = new Subvolumes(vol);
    this.data = new FileData(vol, source, log);
    this.blockSize = vol.sb.sectorsize;
    this.label = vol.sb.label;
    this.uuid = uuidText(vol.sb.fsid);
    this.needsRecovery = vol.sb.logRoot !== 0n;
    this.rootHandle = encodeHandle(ObjectId.FS_TREE, ObjectId.FIRST_FREE);
  }

  static async open(source: ByteSource, options: BtrfsOptions = {}): Promise<Btrfs> {
    const log = options.log ?? (() => undefined);
    return guarded('open', async () => {
      const vol = await openVolume(source, options.cacheBytes ?? DEFAULT_CACHE);
      const fs = new Btrfs(vol, source, log);
      vol.reader.onMirrorFallback = (bytenr, reason) => log({ event: 'btrfs.mirror', bytenr, reason });
      for (const problem of vol.superblockProblems) log({ event: 'btrfs.superblock', reason: problem });
      if (fs.needsRecovery) {
        if (options.journal === 'ignore') {
          log({ event: 'btrfs.log-tree', replayed: false, logRoot: vol.sb.logRoot.toString(), reason: "journal: 'ignore': the last committed transaction is shown" });
        } else {
          const r = await replayLog(vol, fs.subvols);
          log({ event: 'btrfs.log-tree', replayed: true, logRoot: vol.sb.logRoot.toString(), subvolumes: r.subvolumes, items: r.items });
        }
      }
      // The top level must be readable for anything to be.
      await fs.subvols.require(ObjectId.FS_TREE);
      return fs;
    }, (err) => log({ event: 'btrfs.internal', error: err instanceof Error ? err.stack ?? err.message : String(err) }));
  }

  private internal(err: unknown): void {
    this.log({ event: 'btrfs.internal', error: err instanceof Error ? err.stack ?? err.message : String(err) });
  }

  private async inode(t: FsTree, objectid: bigint): Promise<InodeItem> {
    const it = await t.tree.get(key(objectid, KeyType.INODE_ITEM, 0n));
    if (!it) throw corrupt(`subvolume ${t.id}: inode ${objectid} has no inode item`);
    return parseInodeItem(it.data);
  }

  private async resolve(handle: number): Promise<{ t: FsTree; objectid: bigint } | { stub: Stub }> {
    const { tree, objectid } = decodeHandle(handle);
    if (tree === STUB_TREE) {
      const stub = this.stubs[objectid - 1];
      if (!stub) throw new StrataError(Errno.ESTALE, `btrfs: no object for handle ${handle}`);
      return { stub };
    }
    return { t: await this.subvols.require(BigInt(tree)), objectid: BigInt(objectid) };
  }

  node(handle: number): Promise<FsNode> {
    return guarded('node', async () => {
      const r = await this.resolve(handle);
      if ('stub' in r) {
        const parent = await this.node(r.stub.parent);
        return {
          handle,
          ino: Number(ObjectId.EMPTY_SUBVOL_DIR),
          devIndex: 0,
          mode: S_IFDIR | 0o755,
          uid: parent.uid,
          gid: parent.gid,
          nlink: 1,
          size: 0,
          rdev: 0,
          blocks: 0,
          blksize: this.blockSize,
          atimeNs: parent.atimeNs,
          mtimeNs: this.openedNs,
          ctimeNs: this.openedNs,
          crtimeNs: this.openedNs,
        };
      }
      const ino = await this.inode(r.t, r.objectid);
      const sector = this.blockSize;
      const nbytes = safeU64(ino.nbytes, 'inode nbytes');
      return {
        handle,
        ino: Number(r.objectid),
        devIndex: Number(r.t.id),
        mode: ino.mode,
        uid: ino.uid,
        gid: ino.gid,
        nlink: ino.nlink,
        size: safeU64(ino.size, 'inode size'),
        rdev: rdevOf(ino.rdev),
        blocks: (Math.ceil(nbytes / sector) * sector) / 512,
        blksize: sector,
        atimeNs: ino.atimeNs,
        mtimeNs: ino.mtimeNs,
        ctimeNs: ino.ctimeNs,
        crtimeNs: ino.otimeNs,
      };
    }, (e) => this.internal(e));
  }

  private async directory(handle: number): Promise<{ t: FsTree; objectid: bigint } | undefined> {
    const r = await this.resolve(handle);
    if ('stub' in r) return undefined;
    const ino = await this.inode(r.t, r.objectid);
    if ((ino.mode & S_IFMT) !== S_IFDIR) throw StrataError.notDir(`btrfs: handle ${handle} is not a directory`);
    return r;
  }

  private stubFor(parent: number, child: bigint): number {
    const k = `${parent}:${child}`;
    let i = this.stubIndex.get(k);
    if (i === undefined) {
      if (this.stubs.length >= MAX_STUBS) throw new StrataError(Errno.EOVERFLOW, 'btrfs: too many empty-subvolume stubs');
      this.stubs.push({ parent });
      i = this.stubs.length;
      this.stubIndex.set(k, i);
    }
    return encodeHandle(STUB_TREE, i);
  }

  /** Where a directory entry leads: an inode of the same tree, a subvolume's root, or a stub (fixup_tree_root_location). */
  private async target(dirHandle: number, dir: { t: FsTree; objectid: bigint }, item: DirItem): Promise<number> {
    if (item.location.type === KeyType.INODE_ITEM) return encodeHandle(dir.t.id, item.location.objectid);
    if (item.location.type !== KeyType.ROOT_ITEM) throw corrupt(`directory ${dir.objectid}: entry location type ${item.location.type}`);
    const child = item.location.objectid;
    const ref = await this.subvols.rootRef(dir.t.id, child);
    if (ref && ref.dirid === dir.objectid && ref.name.equals(item.name)) {
      const sub = await this.subvols.get(child);
      if (sub) return encodeHandle(sub.id, sub.item.rootDirid);
    }
    return this.stubFor(dirHandle, child);
  }

  lookup(dirHandle: number, name: Buffer): Promise<number | undefined> {
    return guarded('lookup', async () => {
      if (name.length > NAME_MAX) throw new StrataError(Errno.ENAMETOOLONG, 'btrfs: name longer than 255 bytes');
      const dir = await this.directory(dirHandle);
      if (!dir || name.length === 0) return undefined;
      const it = await dir.t.tree.get(key(dir.objectid, KeyType.DIR_ITEM, nameHash(name)));
      if (!it) return undefined;
      const match = parseDirItems(it.data, `directory ${dir.objectid} name item`).find((d) => d.name.equals(name));
      if (!match) return undefined;
      if (match.location.type === KeyType.INODE_ITEM) {
        // As btrfs_lookup_dentry: an entry whose type disagrees with its inode's mode is corruption.
        const ino = await this.inode(dir.t, match.location.objectid);
        const want = dirTypeName(match.type);
        if (want !== 'unknown' && fileTypeOf(ino.mode) !== want) {
          throw corrupt(`directory ${dir.objectid}: entry type ${want} but inode ${match.location.objectid} is ${fileTypeOf(ino.mode)}`);
        }
      }
      return this.target(dirHandle, dir, match);
    }, (e) => this.internal(e));
  }

  readdir(dirHandle: number): Promise<FsDirEntry[]> {
    return guarded('readdir', async () => {
      const dir = await this.directory(dirHandle);
      if (!dir) return [];
      const out: FsDirEntry[] = [];
      for await (const it of dir.t.tree.range(key(dir.objectid, KeyType.DIR_INDEX, 2n), key(dir.objectid, KeyType.DIR_INDEX, U64_MAX))) {
        if (out.length >= MAX_DIR_ENTRIES) throw corrupt(`directory ${dir.objectid}: more than ${MAX_DIR_ENTRIES} entries`);
        const items = parseDirItems(it.data, `directory ${dir.objectid} index ${it.key.offset}`);
        if (items.length !== 1) throw corrupt(`directory ${dir.objectid} index ${it.key.offset}: ${items.length} entries in one index item`);
        const d = items[0];
        out.push({ name: Buffer.from(d.name), handle: await this.target(dirHandle, dir, d), type: dirTypeName(d.type) });
      }
      return out;
    }, (e) => this.internal(e));
  }

  readlink(handle: number): Promise<Buffer> {
    return guarded('readlink', async () => {
      const r = await this.resolve(handle);
      if ('stub' in r) throw StrataError.invalid('btrfs: not a symlink');
      const ino = await this.inode(r.t, r.objectid);
      if ((ino.mode & S_IFMT) !== S_IFLNK) throw StrataError.invalid(`btrfs: inode ${r.objectid} is not a symlink`);
      const size = safeU64(ino.size, 'symlink size');
      if (size > 4096 * 16) throw corrupt(`symlink ${r.objectid}: ${size} bytes`);
      return this.data.read(r.t.tree, r.objectid, 0, size);
    }, (e) => this.internal(e));
  }

  read(handle: number, offset: number, length: number): Promise<Buffer> {
    return guarded('read', async () => {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || length > MAX_READ) {
        throw StrataError.invalid(`btrfs: bad read range ${offset}+${length}`);
      }
      const r = await this.resolve(handle);
      if ('stub' in r) throw new StrataError(Errno.EISDIR, 'btrfs: is a directory');
      const ino = await this.inode(r.t, r.objectid);
      const type = ino.mode & S_IFMT;
      if (type === S_IFDIR) throw new StrataError(Errno.EISDIR, `btrfs: inode ${r.objectid} is a directory`);
      if (type !== S_IFREG) throw StrataError.invalid(`btrfs: inode ${r.objectid} is not a regular file`);
      const size = safeU64(ino.size, 'file size');
      if (offset >= size) return Buffer.alloc(0);
      return this.data.read(r.t.tree, r.objectid, offset, Math.min(length, size - offset), ino.flags);
    }, (e) => this.internal(e));
  }

  xattrs(handle: number): Promise<FsXattr[]> {
    return guarded('xattrs', async () => {
      const r = await this.resolve(handle);
      if ('stub' in r) return [];
      const out: FsXattr[] = [];
      for await (const it of r.t.tree.range(key(r.objectid, KeyType.XATTR_ITEM, 0n), key(r.objectid, KeyType.XATTR_ITEM, U64_MAX))) {
        for (const d of parseDirItems(it.data, `inode ${r.objectid} xattr`)) {
          if (out.length >= MAX_XATTRS) throw corrupt(`inode ${r.objectid}: too many xattrs`);
          out.push({ name: d.name.toString('latin1'), value: Buffer.from(d.data) });
        }
      }
      return out;
    }, (e) => this.internal(e));
  }

  statfs(): Promise<FsStatFs> {
    return guarded('statfs', () => computeStatfs(this.vol), (e) => this.internal(e));
  }

  /**
   * The handle a path from the top level leads to (each component looked
   * up in turn; no symlinks followed), undefined where a component is
   * missing: how a subvolume found by defaultSubvolumePath() is opened.
   */
  lookupPath(path: string | Buffer): Promise<number | undefined> {
    return guarded('lookupPath', async () => {
      const bytes = typeof path === 'string' ? Buffer.from(path) : path;
      let handle: number | undefined = this.rootHandle;
      let start = 0;
      for (let depth = 0; handle !== undefined && start <= bytes.length; depth++) {
        if (depth > MAX_PATH_DEPTH) throw new StrataError(Errno.ELOOP, 'btrfs: path too deep');
        let end = bytes.indexOf(0x2f, start);
        if (end < 0) end = bytes.length;
        if (end > start) handle = await this.lookup(handle, bytes.subarray(start, end));
        start = end + 1;
      }
      return handle;
    }, (e) => this.internal(e));
  }

  /** The path (bytes) of directory `objectid` inside subvolume `t`, from its root directory, via INODE_REF/EXTREF. */
  private async pathInTree(t: FsTree, objectid: bigint): Promise<Buffer[]> {
    const parts: Buffer[] = [];
    let cur = objectid;
    for (let depth = 0; cur !== t.item.rootDirid; depth++) {
      if (depth > MAX_PATH_DEPTH) throw corrupt(`subvolume ${t.id}: directory ${objectid} is deeper than ${MAX_PATH_DEPTH}`);
      let ref: { parent: bigint; name: Buffer } | undefined;
      for await (const it of t.tree.range(key(cur, KeyType.INODE_REF, 0n), key(cur, KeyType.INODE_EXTREF, U64_MAX))) {
        const refs = it.key.type === KeyType.INODE_REF ? parseInodeRefs(it.data, it.key.offset) : parseInodeExtrefs(it.data);
        if (refs.length) ref = refs[0];
        break;
      }
      if (!ref) throw corrupt(`subvolume ${t.id}: directory ${cur} has no name`);
      parts.unshift(ref.name);
      cur = ref.parent;
    }
    return parts;
  }

  /** The path of subvolume `id` as bytes ('/' for the top level), through ROOT_BACKREFs up to id 5. */
  async subvolumePath(id: number | bigint): Promise<Buffer> {
    return guarded('subvolumePath', async () => {
      let cur = BigInt(id);
      const parts: Buffer[] = [];
      for (let depth = 0; cur !== ObjectId.FS_TREE; depth++) {
        if (depth > MAX_PATH_DEPTH) throw corrupt(`subvolume ${id}: nested deeper than ${MAX_PATH_DEPTH}`);
        const back = await this.subvols.backref(cur);
        if (!back || !(await this.subvols.get(cur))) throw StrataError.notFound(`btrfs: subvolume ${id} is not reachable from the top level`);
        const parent = await this.subvols.require(back.parent);
        parts.unshift(...(await this.pathInTree(parent, back.ref.dirid)), back.ref.name);
        cur = back.parent;
      }
      return Buffer.concat([Buffer.from('/'), Buffer.concat(parts.flatMap((p, i) => (i ? [Buffer.from('/'), p] : [p])))]);
    }, (e) => this.internal(e));
  }

  /** For fstab's `subvolid=`: the path of subvolume `id` under the top level. */
  async subvolumePathById(id: number | bigint): Promise<string> {
    return (await this.subvolumePath(id)).toString('utf8');
  }

  /** The id of the default subvolume (`btrfs subvolume set-default`), 5 when none is set. */
  async defaultSubvolumeId(): Promise<number> {
    return guarded('defaultSubvolumeId', async () => {
      const name = Buffer.from('default');
      const dirid = this.vol.sb.rootDirObjectid === 0n ? ObjectId.ROOT_TREE_DIR : this.vol.sb.rootDirObjectid;
      const it = await this.vol.rootTree.get(key(dirid, KeyType.DIR_ITEM, nameHash(name)));
      const d = it ? parseDirItems(it.data, 'default subvolume item').find((x) => x.name.equals(name)) : undefined;
      if (!d) return Number(ObjectId.FS_TREE);
      return Number(d.location.objectid);
    }, (e) => this.internal(e));
  }

  /** What a plain `mount` (no subvol=) shows: the default subvolume's path, '/' when it is the top level. */
  async defaultSubvolumePath(): Promise<string> {
    return this.subvolumePathById(await this.defaultSubvolumeId());
  }

  /** Every live subvolume, top level first. */
  async subvolumes(): Promise<SubvolumeInfo[]> {
    return guarded('subvolumes', async () => {
      const out: SubvolumeInfo[] = [];
      for (const id of await this.subvols.list()) {
        const t = await this.subvols.get(id);
        if (!t) continue;
        let path: string;
        try {
          path = await this.subvolumePathById(id);
        } catch {
          // Not reachable from the top level (its parent is gone): not a directory anyone can open.
          continue;
        }
        out.push({ id: Number(id), path, readOnly: (t.item.flags & 1n) !== 0n });
      }
      return out;
    }, (e) => this.internal(e));
  }
}
