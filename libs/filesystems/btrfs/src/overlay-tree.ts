import type { BTree, Item } from './btree';
import { corrupt } from './errors';
import { compareKeys, type Key } from './key';

/** What readers of an fs tree need: BTree, or a BTree with replayed changes on top. */
export interface ItemTree {
  range(from: Key, to: Key): AsyncGenerator<Item>;
  get(k: Key): Promise<Item | undefined>;
  lastAtOrBefore(target: Key, floor: Key): Promise<Item | undefined>;
}

interface Entry {
  key: Key;
  /** undefined: the item is deleted. */
  data: Buffer | undefined;
}

/** Sortable text of a key: fixed-width hex, so string order is key order. */
function keyId(k: Key): string {
  return `${k.objectid.toString(16).padStart(16, '0')}${k.type.toString(16).padStart(2, '0')}${k.offset.toString(16).padStart(16, '0')}`;
}

const MAX_ENTRIES = 1 << 21;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** The greatest key below `k`, if any. */
function keyBefore(k: Key): Key | undefined {
  if (k.offset > 0n) return { objectid: k.objectid, type: k.type, offset: k.offset - 1n };
  if (k.type > 0) return { objectid: k.objectid, type: k.type - 1, offset: U64_MAX };
  if (k.objectid > 0n) return { objectid: k.objectid - 1n, type: 255, offset: U64_MAX };
  return undefined;
}

/**
 * An fs tree as log replay leaves it, in memory: items put or deleted here
 * hide the on-disk tree's items with the same key. The image is never
 * written.
 */
export class OverlayTree implements ItemTree {
  private readonly entries = new Map<string, Entry>();
  private sorted: Entry[] | undefined;

  constructor(readonly base: BTree) {}

  get size(): number {
    return this.entries.size;
  }

  put(key: Key, data: Buffer): void {
    this.set(key, Buffer.from(data));
  }

  delete(key: Key): void {
    this.set(key, undefined);
  }

  private set(key: Key, data: Buffer | undefined): void {
    if (this.entries.size >= MAX_ENTRIES) throw corrupt('log replay: too many changed items');
    this.entries.set(keyId(key), { key, data });
    this.sorted = undefined;
  }

  private ordered(): Entry[] {
    if (!this.sorted) this.sorted = [...this.entries.values()].sort((a, b) => compareKeys(a.key, b.key));
    return this.sorted;
  }

  /** Index of the first overlay entry with key ≥ k. */
  private lowerBound(k: Key): number {
    const list = this.ordered();
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(list[mid].key, k) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async *range(from: Key, to: Key): AsyncGenerator<Item> {
    const list = this.ordered();
    let i = this.lowerBound(from);
    for await (const it of this.base.range(from, to)) {
      for (; i < list.length && compareKeys(list[i].key, it.key) < 0; i++) {
        if (compareKeys(list[i].key, to) > 0) break;
        const e = list[i];
        if (e.data) yield { key: e.key, data: e.data };
      }
      if (i < list.length && compareKeys(list[i].key, it.key) === 0) {
        const e = list[i++];
        if (e.data) yield { key: e.key, data: e.data };
        continue;
      }
      yield it;
    }
    for (; i < list.length && compareKeys(list[i].key, to) <= 0; i++) {
      const e = list[i];
      if (e.data) yield { key: e.key, data: e.data };
    }
  }

  async get(k: Key): Promise<Item | undefined> {
    const e = this.entries.get(keyId(k));
    if (e) return e.data ? { key: e.key, data: e.data } : undefined;
    return this.base.get(k);
  }

  async lastAtOrBefore(target: Key, floor: Key): Promise<Item | undefined> {
    const list = this.ordered();
    // The overlay's candidate: the last live entry in [floor, target].
    let mine: Entry | undefined;
    for (let i = this.lowerBound(target); i >= 0; i--) {
      const e = list[i];
      if (!e || compareKeys(e.key, target) > 0) continue;
      if (compareKeys(e.key, floor) < 0) break;
      if (e.data) {
        mine = e;
        break;
      }
    }
    // The base's candidate: step back over keys the overlay hides (each step one descent).
    let theirs = await this.base.lastAtOrBefore(target, floor);
    for (let steps = 0; theirs && this.entries.has(keyId(theirs.key)); steps++) {
      if (steps > this.entries.size) throw corrupt('log replay: overlay walk did not end');
      const before = keyBefore(theirs.key);
      theirs = before && compareKeys(before, floor) >= 0 ? await this.base.lastAtOrBefore(before, floor) : undefined;
    }
    if (mine && (!theirs || compareKeys(mine.key, theirs.key) >= 0)) return { key: mine.key, data: mine.data as Buffer };
    return theirs;
  }
}
