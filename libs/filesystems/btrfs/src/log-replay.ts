/**
 * Log tree replay in memory (fs/btrfs/tree-log.c, btrfs_recover_log_trees):
 * what a guest fsync'd after the last commit is applied to an overlay of
 * each subvolume's tree, in the kernel's stages — inode items (with the
 * deletes of names and xattrs the log says are gone), directory index
 * entries, then names, xattrs and file extents — and the invariants the
 * kernel's replay keeps (link counts, directory sizes, nbytes) recomputed
 * for what was touched. The image is never written.
 */
import { BTree, type Item } from './btree';
import { FileExtentType, KeyType, ObjectId } from './constants';
import { corrupt, safeU64 } from './errors';
import { parseDirItems, type DirItem } from './dir-item';
import { parseFileExtent } from './file-extent';
import { INODE_ITEM_SIZE, parseInodeItem } from './inode-item';
import { parseInodeExtrefs, parseInodeRefs, type InodeRef } from './inode-ref';
import { KEY_SIZE, U64_MAX, key, type Key } from './key';
import { extrefHash, nameHash } from './name-hash';
import { OverlayTree } from './overlay-tree';
import { parseRootItem } from './root-item';
import type { Subvolumes } from './subvolumes';
import type { Volume } from './volume';

const MAX_LOG_ITEMS = 1 << 20;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

export interface ReplayResult {
  subvolumes: number;
  items: number;
}

function dirEntryBytes(location: Key, type: number, name: Buffer, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(KEY_SIZE + 13 + name.length + data.length);
  b.writeBigUInt64LE(location.objectid, 0);
  b[8] = location.type;
  b.writeBigUInt64LE(location.offset, 9);
  b.writeUInt16LE(data.length, KEY_SIZE + 8);
  b.writeUInt16LE(name.length, KEY_SIZE + 10);
  b[KEY_SIZE + 12] = type;
  name.copy(b, KEY_SIZE + 13);
  data.copy(b, KEY_SIZE + 13 + name.length);
  return b;
}

function serializeDirItems(items: DirItem[]): Buffer {
  return Buffer.concat(items.map((d) => dirEntryBytes(d.location, d.type, d.name, d.data)));
}

function refBytes(refs: InodeRef[]): Buffer {
  return Buffer.concat(
    refs.map((r) => {
      const b = Buffer.alloc(10 + r.name.length);
      b.writeBigUInt64LE(r.index, 0);
      b.writeUInt16LE(r.name.length, 8);
      r.name.copy(b, 10);
      return b;
    }),
  );
}

function extrefBytes(refs: InodeRef[]): Buffer {
  return Buffer.concat(
    refs.map((r) => {
      const b = Buffer.alloc(18 + r.name.length);
      b.writeBigUInt64LE(r.parent, 0);
      b.writeBigUInt64LE(r.index, 8);
      b.writeUInt16LE(r.name.length, 16);
      r.name.copy(b, 18);
      return b;
    }),
  );
}

/** BTRFS_FT_* of a mode. */
function ftypeOf(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 1;
    case S_IFDIR:
      return 2;
    case 0o020000:
      return 3;
    case 0o060000:
      return 4;
    case 0o010000:
      return 5;
    case 0o140000:
      return 6;
    case 0o120000:
      return 7;
    default:
      return 0;
  }
}

/** One subvolume's replay: the log's items against an overlay of its tree. */
class SubvolumeReplay {
  private readonly fixup = new Set<bigint>();
  private readonly dirs = new Set<bigint>();
  private readonly files = new Set<bigint>();
  private readonly ignored = new Set<bigint>();

  constructor(
    private readonly fs: OverlayTree,
    private readonly log: Item[],
    private readonly sectorsize: number,
  ) {}

  /** The log's items by (objectid, type), and its DIR_INDEX keys: every lookup in the stages is a map hit. */
  private readonly byInodeType = new Map<string, Item[]>();
  private readonly dirIndexes = new Set<string>();

  private logItems(objectid: bigint, type: number): Item[] {
    return this.byInodeType.get(`${objectid}:${type}`) ?? [];
  }

  private async collect(from: Key, to: Key): Promise<Item[]> {
    const out: Item[] = [];
    for await (const it of this.fs.range(from, to)) {
      if (out.length >= MAX_LOG_ITEMS) throw corrupt('log replay: range too large');
      out.push(it);
    }
    return out;
  }

  async run(): Promise<void> {
    for (const it of this.log) {
      const k = `${it.key.objectid}:${it.key.type}`;
      const list = this.byInodeType.get(k);
      if (list) list.push(it);
      else this.byInodeType.set(k, [it]);
      if (it.key.type === KeyType.DIR_INDEX) this.dirIndexes.add(`${it.key.objectid}:${it.key.offset}`);
    }
    for (const it of this.log) if (it.key.type === KeyType.INODE_ITEM) await this.replayInode(it);
    for (const it of this.log) if (it.key.type === KeyType.DIR_INDEX && !this.ignored.has(it.key.objectid)) await this.replayDirIndex(it);
    for (const it of this.log) {
      if (this.ignored.has(it.key.objectid)) continue;
      if (it.key.type === KeyType.INODE_REF || it.key.type === KeyType.INODE_EXTREF) await this.replayRefs(it);
      else if (it.key.type === KeyType.XATTR_ITEM) this.fs.put(it.key, it.data);
      else if (it.key.type === KeyType.EXTENT_DATA) await this.replayExtent(it);
    }
    await this.fixupCounts();
  }

  private async replayInode(it: Item): Promise<void> {
    const ino = it.key.objectid;
    const logged = parseInodeItem(it.data);
    if (logged.nlink === 0) {
      // An O_TMPFILE that was fsync'd: the kernel ignores it.
      this.ignored.add(ino);
      return;
    }
    await this.replayXattrDeletes(ino);
    if ((logged.mode & S_IFMT) === S_IFDIR) await this.replayDirDeletes(ino);
    const existing = await this.fs.get(key(ino, KeyType.INODE_ITEM, 0n));
    if (existing && existing.data.length >= INODE_ITEM_SIZE && logged.generation === 0n) {
      // Logged only to say the inode exists: keep it, except a regular file's size.
      const cur = parseInodeItem(existing.data);
      if ((cur.mode & S_IFMT) === S_IFREG && (logged.mode & S_IFMT) === S_IFREG && logged.size !== 0n) {
        const b = Buffer.from(existing.data);
        b.writeBigUInt64LE(logged.size, 16);
        this.fs.put(it.key, b);
      }
    } else {
      // The log does not fill nbytes (stale bytes of the leaf): an existing inode keeps its own, a new one starts at 0.
      const b = Buffer.from(it.data.subarray(0, INODE_ITEM_SIZE));
      b.writeBigUInt64LE(existing && existing.data.length >= INODE_ITEM_SIZE ? existing.data.readBigUInt64LE(24) : 0n, 24);
      this.fs.put(it.key, b);
    }
    if ((logged.mode & S_IFMT) === S_IFDIR) this.dirs.add(ino);
    if ((logged.mode & S_IFMT) === S_IFREG) {
      this.files.add(ino);
      const now = await this.fs.get(key(ino, KeyType.INODE_ITEM, 0n));
      const size = now ? safeU64(parseInodeItem(now.data).size, 'inode size') : 0;
      await this.dropExtents(ino, Math.ceil(size / this.sectorsize) * this.sectorsize, Number.MAX_SAFE_INTEGER);
    }
    this.fixup.add(ino);
  }

  private async replayXattrDeletes(ino: bigint): Promise<void> {
    const logged = this.logItems(ino, KeyType.XATTR_ITEM);
    for (const it of await this.collect(key(ino, KeyType.XATTR_ITEM, 0n), key(ino, KeyType.XATTR_ITEM, U64_MAX))) {
      const inLog = logged.find((l) => l.key.offset === it.key.offset);
      const names = inLog ? parseDirItems(inLog.data, 'log xattr').map((d) => d.name) : [];
      const keep = parseDirItems(it.data, 'xattr').filter((d) => names.some((n) => n.equals(d.name)));
      if (keep.length === 0) this.fs.delete(it.key);
      else this.fs.put(it.key, serializeDirItems(keep));
    }
  }

  /** Entries of a logged directory inside a DIR_LOG_INDEX range that the log lacks are gone. */
  private async replayDirDeletes(dir: bigint): Promise<void> {
    for (const range of this.logItems(dir, KeyType.DIR_LOG_INDEX)) {
      if (range.data.length < 8) throw corrupt('log replay: dir log range too short');
      const end = range.data.readBigUInt64LE(0);
      for (const it of await this.collect(key(dir, KeyType.DIR_INDEX, range.key.offset), key(dir, KeyType.DIR_INDEX, end))) {
        if (this.dirIndexes.has(`${dir}:${it.key.offset}`)) continue;
        for (const d of parseDirItems(it.data, 'dir index')) await this.unlink(dir, d, it.key.offset);
      }
    }
  }

  /** Removes one name: its DIR_ITEM entry, its DIR_INDEX, and the target's back reference. */
  private async unlink(dir: bigint, d: DirItem, index: bigint): Promise<void> {
    if (d.location.type !== KeyType.INODE_ITEM) return;
    const hashKey = key(dir, KeyType.DIR_ITEM, nameHash(d.name));
    const item = await this.fs.get(hashKey);
    if (item) {
      const rest = parseDirItems(item.data, 'dir item').filter((x) => !x.name.equals(d.name));
      if (rest.length) this.fs.put(hashKey, serializeDirItems(rest));
      else this.fs.delete(hashKey);
    }
    this.fs.delete(key(dir, KeyType.DIR_INDEX, index));
    await this.removeRef(d.location.objectid, dir, d.name);
    this.dirs.add(dir);
  }

  private async removeRef(ino: bigint, parent: bigint, name: Buffer): Promise<void> {
    const refKey = key(ino, KeyType.INODE_REF, parent);
    const ref = await this.fs.get(refKey);
    if (ref) {
      const rest = parseInodeRefs(ref.data, parent).filter((r) => !r.name.equals(name));
      if (rest.length) this.fs.put(refKey, refBytes(rest));
      else this.fs.delete(refKey);
    }
    const extKey = key(ino, KeyType.INODE_EXTREF, extrefHash(parent, name));
    const ext = await this.fs.get(extKey);
    if (ext) {
      const rest = parseInodeExtrefs(ext.data).filter((r) => !(r.parent === parent && r.name.equals(name)));
      if (rest.length) this.fs.put(extKey, extrefBytes(rest));
      else this.fs.delete(extKey);
    }
    this.fixup.add(ino);
  }

  private async inodeMode(ino: bigint): Promise<number | undefined> {
    const it = await this.fs.get(key(ino, KeyType.INODE_ITEM, 0n));
    return it ? parseInodeItem(it.data).mode : undefined;
  }

  /** Adds a name (btrfs_add_link with a back reference), replacing whatever held the name or the index. */
  private async link(dir: bigint, target: bigint, type: number, name: Buffer, index: bigint): Promise<void> {
    const hashKey = key(dir, KeyType.DIR_ITEM, nameHash(name));
    const item = await this.fs.get(hashKey);
    const entries = item ? parseDirItems(item.data, 'dir item') : [];
    const same = entries.find((x) => x.name.equals(name));
    if (same && same.location.objectid === target && same.location.type === KeyType.INODE_ITEM) {
      const idx = await this.fs.get(key(dir, KeyType.DIR_INDEX, index));
      if (idx) return;
    }
    if (same) {
      // The name leads elsewhere (or under another index) in the committed tree: that link is gone.
      const old = await this.findIndex(dir, same.name);
      if (old !== undefined) await this.unlink(dir, same, old);
      else await this.removeRef(same.location.objectid, dir, same.name);
    }
    const atIndex = await this.fs.get(key(dir, KeyType.DIR_INDEX, index));
    if (atIndex) for (const d of parseDirItems(atIndex.data, 'dir index')) await this.unlink(dir, d, index);
    const location = key(target, KeyType.INODE_ITEM, 0n);
    const fresh = await this.fs.get(hashKey);
    const rest = fresh ? parseDirItems(fresh.data, 'dir item').filter((x) => !x.name.equals(name)) : [];
    this.fs.put(hashKey, serializeDirItems([...rest, { location, type, name, data: Buffer.alloc(0) }]));
    this.fs.put(key(dir, KeyType.DIR_INDEX, index), dirEntryBytes(location, type, name));
    const refKey = key(target, KeyType.INODE_REF, dir);
    const ref = await this.fs.get(refKey);
    const refs = ref ? parseInodeRefs(ref.data, dir) : [];
    if (!refs.some((r) => r.name.equals(name))) this.fs.put(refKey, refBytes([...refs, { parent: dir, index, name }]));
    this.dirs.add(dir);
    this.fixup.add(target);
  }

  private async findIndex(dir: bigint, name: Buffer): Promise<bigint | undefined> {
    for (const it of await this.collect(key(dir, KeyType.DIR_INDEX, 0n), key(dir, KeyType.DIR_INDEX, U64_MAX))) {
      if (parseDirItems(it.data, 'dir index').some((d) => d.name.equals(name))) return it.key.offset;
    }
    return undefined;
  }

  private async replayDirIndex(it: Item): Promise<void> {
    const dir = it.key.objectid;
    for (const d of parseDirItems(it.data, 'log dir index')) {
      if (d.location.type !== KeyType.INODE_ITEM) continue;
      // A name whose inode exists in neither tree is added when its reference is replayed.
      if ((await this.inodeMode(d.location.objectid)) === undefined) continue;
      await this.link(dir, d.location.objectid, d.type, d.name, it.key.offset);
    }
  }

  /** add_inode_ref: the names the log gives an inode in a parent replace the committed ones there. */
  private async replayRefs(it: Item): Promise<void> {
    const ino = it.key.objectid;
    const refs = it.key.type === KeyType.INODE_REF ? parseInodeRefs(it.data, it.key.offset) : parseInodeExtrefs(it.data);
    const mode = await this.inodeMode(ino);
    if (mode === undefined) return;
    for (const parent of new Set(refs.map((r) => r.parent))) {
      if ((await this.inodeMode(parent)) === undefined) continue;
      const logged = refs.filter((r) => r.parent === parent);
      if (it.key.type === KeyType.INODE_REF) {
        const cur = await this.fs.get(key(ino, KeyType.INODE_REF, parent));
        for (const victim of cur ? parseInodeRefs(cur.data, parent) : []) {
          if (logged.some((r) => r.name.equals(victim.name))) continue;
          const d = (await this.fs.get(key(parent, KeyType.DIR_INDEX, victim.index)))?.data;
          const entry = d ? parseDirItems(d, 'dir index').find((x) => x.name.equals(victim.name)) : undefined;
          if (entry) await this.unlink(parent, entry, victim.index);
          else await this.removeRef(ino, parent, victim.name);
        }
      }
      for (const r of logged) await this.link(parent, ino, ftypeOf(mode), r.name, r.index);
    }
  }

  /** Drops the file's extents in [start, end), splitting those that straddle an edge (btrfs_drop_extents). */
  private async dropExtents(ino: bigint, start: number, end: number): Promise<void> {
    const floor = key(ino, KeyType.EXTENT_DATA, 0n);
    const first = await this.fs.lastAtOrBefore(key(ino, KeyType.EXTENT_DATA, BigInt(start)), floor);
    const items = await this.collect(first ? first.key : floor, key(ino, KeyType.EXTENT_DATA, BigInt(Math.max(0, end - 1))));
    for (const it of items) {
      const es = safeU64(it.key.offset, 'extent offset');
      const e = parseFileExtent(it.data);
      const len = e.type === FileExtentType.INLINE ? Math.ceil(safeU64(e.ramBytes, 'inline size') / this.sectorsize) * this.sectorsize : safeU64(e.numBytes, 'extent length');
      const ee = es + len;
      if (ee <= start || es >= end) continue;
      if (e.type !== FileExtentType.INLINE && ee > end) {
        const back = Buffer.from(it.data);
        back.writeBigUInt64LE(e.offset + BigInt(end - es), 37);
        back.writeBigUInt64LE(BigInt(ee - end), 45);
        this.fs.put(key(ino, KeyType.EXTENT_DATA, BigInt(end)), back);
      }
      if (e.type !== FileExtentType.INLINE && es < start) {
        const front = Buffer.from(it.data);
        front.writeBigUInt64LE(BigInt(start - es), 45);
        this.fs.put(it.key, front);
      } else {
        this.fs.delete(it.key);
      }
    }
  }

  private async replayExtent(it: Item): Promise<void> {
    const ino = it.key.objectid;
    if ((await this.inodeMode(ino)) === undefined) return;
    const existing = await this.fs.get(it.key);
    const e = parseFileExtent(it.data);
    if (existing && e.type !== FileExtentType.INLINE && existing.data.equals(it.data)) return;
    const start = safeU64(it.key.offset, 'extent offset');
    const len = e.type === FileExtentType.INLINE ? Math.ceil(safeU64(e.ramBytes, 'inline size') / this.sectorsize) * this.sectorsize : safeU64(e.numBytes, 'extent length');
    await this.dropExtents(ino, start, start + len);
    this.fs.put(it.key, it.data);
    this.files.add(ino);
  }

  /** Link counts, directory sizes and nbytes as the kernel's replay leaves them for what it touched. */
  private async fixupCounts(): Promise<void> {
    for (const ino of new Set([...this.fixup, ...this.dirs, ...this.files])) {
      const inodeKey = key(ino, KeyType.INODE_ITEM, 0n);
      const it = await this.fs.get(inodeKey);
      if (!it || it.data.length < INODE_ITEM_SIZE) continue;
      const b = Buffer.from(it.data);
      const mode = b.readUInt32LE(52);
      if ((mode & S_IFMT) === S_IFDIR) {
        let size = 0n;
        for (const d of await this.collect(key(ino, KeyType.DIR_INDEX, 0n), key(ino, KeyType.DIR_INDEX, U64_MAX))) {
          for (const x of parseDirItems(d.data, 'dir index')) size += BigInt(x.name.length) * 2n;
        }
        b.writeBigUInt64LE(size, 16);
        b.writeUInt32LE(1, 40);
      } else {
        let names = 0;
        for (const r of await this.collect(key(ino, KeyType.INODE_REF, 0n), key(ino, KeyType.INODE_EXTREF, U64_MAX))) {
          names += (r.key.type === KeyType.INODE_REF ? parseInodeRefs(r.data, r.key.offset) : parseInodeExtrefs(r.data)).length;
        }
        b.writeUInt32LE(names, 40);
        let nbytes = 0n;
        for (const x of await this.collect(key(ino, KeyType.EXTENT_DATA, 0n), key(ino, KeyType.EXTENT_DATA, U64_MAX))) {
          const e = parseFileExtent(x.data);
          if (e.type === FileExtentType.INLINE) nbytes += e.ramBytes;
          else if (e.diskBytenr !== 0n) nbytes += e.numBytes;
        }
        b.writeBigUInt64LE(nbytes, 24);
      }
      this.fs.put(inodeKey, b);
    }
  }
}

/** Replays every subvolume's log tree into overlays registered with `subvols`. */
export async function replayLog(vol: Volume, subvols: Subvolumes): Promise<ReplayResult> {
  const logRootTree = new BTree(vol.reader, { bytenr: vol.sb.logRoot, level: vol.sb.logRootLevel, generation: vol.sb.generation + 1n, name: 'log root tree' });
  let subvolumes = 0;
  let items = 0;
  for await (const r of logRootTree.range(key(ObjectId.TREE_LOG, KeyType.ROOT_ITEM, 0n), key(ObjectId.TREE_LOG, KeyType.ROOT_ITEM, U64_MAX))) {
    const root = parseRootItem(r.data);
    const id = r.key.offset;
    const fsTree = await subvols.get(id);
    if (!fsTree) continue;
    const logTree = new BTree(vol.reader, { bytenr: root.bytenr, level: root.level, generation: root.generation, name: `log tree of subvolume ${id}` });
    const log: Item[] = [];
    for await (const it of logTree.range(key(0n, 0, 0n), key(U64_MAX, 255, U64_MAX))) {
      if (log.length >= MAX_LOG_ITEMS) throw corrupt(`log tree of subvolume ${id}: more than ${MAX_LOG_ITEMS} items`);
      log.push({ key: it.key, data: Buffer.from(it.data) });
    }
    const overlay = new OverlayTree(fsTree.base);
    await new SubvolumeReplay(overlay, log, vol.sb.sectorsize).run();
    subvols.setOverlay(id, overlay);
    subvolumes++;
    items += log.length;
  }
  return { subvolumes, items };
}
