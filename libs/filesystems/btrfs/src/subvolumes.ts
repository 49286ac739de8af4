import { Errno, StrataError } from '@strata/errors';
import { BTree } from './btree';
import type { ItemTree, OverlayTree } from './overlay-tree';
import { KeyType, ObjectId } from './constants';
import { corrupt } from './errors';
import { U64_MAX, key } from './key';
import { parseRootItem, parseRootRef, type RootItem, type RootRef } from './root-item';
import type { Volume } from './volume';

/** A subvolume (or snapshot) tree that can be read. */
export interface FsTree {
  id: bigint;
  item: RootItem;
  tree: ItemTree;
  /** The on-disk tree (what log replay starts from). */
  base: BTree;
}

const MAX_OPEN_TREES = 1 << 16;

/** Whether `id` can name a subvolume tree (the top level, or an ordinary objectid). */
export function isSubvolumeId(id: bigint): boolean {
  return id === ObjectId.FS_TREE || (id >= ObjectId.FIRST_FREE && id <= ObjectId.LAST_FREE);
}

/** The fs trees of a volume, looked up in the root tree on first use and kept. */
export class Subvolumes {
  private readonly trees = new Map<bigint, Promise<FsTree | undefined>>();
  /** Subvolumes changed by log replay. */
  private readonly overlays = new Map<bigint, OverlayTree>();

  constructor(private readonly vol: Volume) {}

  /** The subvolume `id`, or undefined when the root tree has no live root item for it (deleted: refs 0). */
  get(id: bigint): Promise<FsTree | undefined> {
    let p = this.trees.get(id);
    if (!p) {
      if (this.trees.size >= MAX_OPEN_TREES) this.trees.clear();
      p = this.load(id);
      this.trees.set(id, p);
      // A failed read (a bad root tree block) is not remembered: it may be a transient source error.
      p.catch(() => this.trees.delete(id));
    }
    return p;
  }

  /** Like get(), but ESTALE for a handle naming no subvolume. */
  async require(id: bigint): Promise<FsTree> {
    const t = isSubvolumeId(id) ? await this.get(id) : undefined;
    if (!t) throw new StrataError(Errno.ESTALE, `btrfs: no subvolume ${id}`);
    return t;
  }

  private async load(id: bigint): Promise<FsTree | undefined> {
    if (!isSubvolumeId(id)) return undefined;
    const found = await this.vol.rootTree.lastAtOrBefore(key(id, KeyType.ROOT_ITEM, U64_MAX), key(id, KeyType.ROOT_ITEM, 0n));
    if (!found) return undefined;
    const item = parseRootItem(found.data);
    if (item.refs === 0 && id !== ObjectId.FS_TREE) return undefined;
    if (item.level >= 8) throw corrupt(`root item ${id}: level ${item.level}`);
    const tree = new BTree(this.vol.reader, { bytenr: item.bytenr, level: item.level, generation: item.generation, name: `subvolume ${id}` });
    return { id, item, tree: this.overlays.get(id) ?? tree, base: tree };
  }

  /** Serves subvolume `id` through `overlay` from now on. */
  setOverlay(id: bigint, overlay: OverlayTree): void {
    this.overlays.set(id, overlay);
    this.trees.delete(id);
  }

  /** ROOT_REF of `child` under `parent`, if the root tree records one. */
  async rootRef(parent: bigint, child: bigint): Promise<RootRef | undefined> {
    const it = await this.vol.rootTree.get(key(parent, KeyType.ROOT_REF, child));
    return it ? parseRootRef(it.data) : undefined;
  }

  /** ROOT_BACKREF of `child`: (parent tree, dir, name); the first when there are several. */
  async backref(child: bigint): Promise<{ parent: bigint; ref: RootRef } | undefined> {
    for await (const it of this.vol.rootTree.range(key(child, KeyType.ROOT_BACKREF, 0n), key(child, KeyType.ROOT_BACKREF, U64_MAX))) {
      return { parent: it.key.offset, ref: parseRootRef(it.data) };
    }
    return undefined;
  }

  /** Ids of every subvolume with a root item (top level first), bounded. */
  async list(limit = 1 << 20): Promise<bigint[]> {
    const out: bigint[] = [ObjectId.FS_TREE];
    for await (const it of this.vol.rootTree.range(key(ObjectId.FIRST_FREE, KeyType.ROOT_ITEM, 0n), key(ObjectId.LAST_FREE, KeyType.ROOT_ITEM, U64_MAX))) {
      if (it.key.type !== KeyType.ROOT_ITEM) continue;
      if (out[out.length - 1] === it.key.objectid) continue;
      if (out.length >= limit) throw corrupt(`more than ${limit} subvolumes`);
      out.push(it.key.objectid);
    }
    return out;
  }
}
