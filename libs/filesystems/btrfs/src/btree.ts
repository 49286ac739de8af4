import type { BlockReader } from './block-reader';
import { corrupt } from './errors';
import { compareKeys, type Key } from './key';
import type { TreeBlock } from './tree-block';

/** Where a tree's root is. */
export interface TreeRoot {
  bytenr: bigint;
  level: number;
  generation?: bigint;
  name: string;
}

/** One leaf item as found by a search. */
export interface Item {
  key: Key;
  data: Buffer;
}

interface Step {
  block: TreeBlock;
  slot: number;
}

/** Upper bound on leaves one range walk may visit: a walk never runs unbounded on hostile input. */
const MAX_LEAVES_PER_WALK = 1 << 22;

/** Read access to one B-tree (root tree, chunk tree, an fs tree, ...). */
export class BTree {
  constructor(
    private readonly reader: BlockReader,
    readonly root: TreeRoot,
  ) {}

  private async child(parent: TreeBlock, slot: number): Promise<TreeBlock> {
    const p = parent.ptrs[slot];
    return this.reader.read(p.blockptr, { level: parent.level - 1, generation: p.generation, firstKey: p.key });
  }

  /** The path to `target`: in nodes the last child whose key ≤ target, in the leaf the first item ≥ target. */
  private async descend(target: Key): Promise<Step[]> {
    const path: Step[] = [];
    let block = await this.reader.read(this.root.bytenr, { level: this.root.level, generation: this.root.generation });
    for (;;) {
      if (block.isLeaf) {
        let lo = 0;
        let hi = block.items.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (compareKeys(block.items[mid].key, target) < 0) lo = mid + 1;
          else hi = mid;
        }
        path.push({ block, slot: lo });
        return path;
      }
      let lo = 0;
      let hi = block.ptrs.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareKeys(block.ptrs[mid].key, target) <= 0) lo = mid + 1;
        else hi = mid;
      }
      const slot = Math.max(0, lo - 1);
      path.push({ block, slot });
      if (path.length > 8) throw corrupt(`${this.root.name}: deeper than 8 levels`);
      block = await this.child(block, slot);
    }
  }

  /** Moves the path to the next leaf (its slot 0); false at the end of the tree. */
  private async nextLeaf(path: Step[]): Promise<boolean> {
    let depth = path.length - 2;
    while (depth >= 0 && path[depth].slot + 1 >= path[depth].block.ptrs.length) depth--;
    if (depth < 0) return false;
    path[depth].slot++;
    path.length = depth + 1;
    let block = path[depth].block;
    while (!block.isLeaf) {
      const slot = path[path.length - 1].slot;
      block = await this.child(block, slot);
      path.push({ block, slot: 0 });
    }
    return true;
  }

  /** Moves the path to the previous leaf (its last slot); false at the start of the tree. */
  private async prevLeaf(path: Step[]): Promise<boolean> {
    let depth = path.length - 2;
    while (depth >= 0 && path[depth].slot === 0) depth--;
    if (depth < 0) return false;
    path[depth].slot--;
    path.length = depth + 1;
    let block = path[depth].block;
    while (!block.isLeaf) {
      block = await this.child(block, path[path.length - 1].slot);
      path.push({ block, slot: block.count - 1 });
    }
    return true;
  }

  /** Items with from ≤ key ≤ to, ascending. */
  async *range(from: Key, to: Key): AsyncGenerator<Item> {
    const path = await this.descend(from);
    for (let leaves = 0; leaves < MAX_LEAVES_PER_WALK; leaves++) {
      const step = path[path.length - 1];
      for (; step.slot < step.block.items.length; step.slot++) {
        const it = step.block.items[step.slot];
        if (compareKeys(it.key, to) > 0) return;
        yield { key: it.key, data: step.block.itemData(step.slot) };
      }
      if (!(await this.nextLeaf(path))) return;
    }
    throw corrupt(`${this.root.name}: more than ${MAX_LEAVES_PER_WALK} leaves in one walk`);
  }

  /** Every item with from ≤ key ≤ to (bounded by `limit`). */
  async collect(from: Key, to: Key, limit = 1 << 20): Promise<Item[]> {
    const out: Item[] = [];
    for await (const it of this.range(from, to)) {
      if (out.length >= limit) throw corrupt(`${this.root.name}: more than ${limit} items in one range`);
      out.push(it);
    }
    return out;
  }

  /** The item with exactly this key. */
  async get(k: Key): Promise<Item | undefined> {
    for await (const it of this.range(k, k)) return it;
    return undefined;
  }

  /** The last item with key ≤ target (and ≥ floor), if any. */
  async lastAtOrBefore(target: Key, floor: Key): Promise<Item | undefined> {
    const path = await this.descend(target);
    const step = path[path.length - 1];
    if (step.slot < step.block.items.length && compareKeys(step.block.items[step.slot].key, target) === 0) {
      return { key: target, data: step.block.itemData(step.slot) };
    }
    if (step.slot === 0) {
      if (!(await this.prevLeaf(path))) return undefined;
    } else {
      step.slot--;
    }
    const last = path[path.length - 1];
    if (last.block.items.length === 0) return undefined;
    const it = last.block.items[last.slot];
    if (compareKeys(it.key, floor) < 0) return undefined;
    return { key: it.key, data: last.block.itemData(last.slot) };
  }
}
