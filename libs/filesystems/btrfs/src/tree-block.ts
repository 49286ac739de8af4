import { MAX_LEVEL } from './constants';
import { corrupt } from './errors';
import { KEY_SIZE, compareKeys, readKey, type Key } from './key';

export const HEADER_SIZE = 101;
const ITEM_SIZE = KEY_SIZE + 8;
const PTR_SIZE = KEY_SIZE + 16;

/** One item of a leaf: its key and where its data lies in the block. */
export interface LeafItem {
  key: Key;
  offset: number;
  size: number;
}

/** One child pointer of a node. */
export interface NodePtr {
  key: Key;
  blockptr: bigint;
  generation: bigint;
}

/**
 * A tree block (node or leaf) whose header and item table passed the
 * checks the kernel's tree-checker makes for reading: keys strictly
 * ascending, every item's data inside the block and not overlapping the
 * item table.
 */
export class TreeBlock {
  readonly items: LeafItem[] = [];
  readonly ptrs: NodePtr[] = [];

  private constructor(
    readonly data: Buffer,
    readonly bytenr: bigint,
    readonly level: number,
    readonly generation: bigint,
    readonly owner: bigint,
  ) {}

  get isLeaf(): boolean {
    return this.level === 0;
  }

  get count(): number {
    return this.isLeaf ? this.items.length : this.ptrs.length;
  }

  keyAt(i: number): Key {
    return this.isLeaf ? this.items[i].key : this.ptrs[i].key;
  }

  /** The data of item `i` (a view into the block). */
  itemData(i: number): Buffer {
    const it = this.items[i];
    return this.data.subarray(HEADER_SIZE + it.offset, HEADER_SIZE + it.offset + it.size);
  }

  /**
   * Parses `data` read for logical `bytenr`; the checksum was checked by
   * the caller. `fsid` is the metadata uuid every block must carry.
   */
  static parse(data: Buffer, bytenr: bigint, fsid: Buffer): TreeBlock {
    if (data.length < HEADER_SIZE) throw corrupt(`tree block ${bytenr}: too small`);
    if (!data.subarray(32, 48).equals(fsid)) throw corrupt(`tree block ${bytenr}: fsid mismatch`);
    const own = data.readBigUInt64LE(48);
    if (own !== bytenr) throw corrupt(`tree block ${bytenr}: header says ${own}`);
    const nritems = data.readUInt32LE(96);
    const level = data[100];
    if (level >= MAX_LEVEL) throw corrupt(`tree block ${bytenr}: level ${level}`);
    const block = new TreeBlock(data, bytenr, level, data.readBigUInt64LE(80), data.readBigUInt64LE(88));
    const room = data.length - HEADER_SIZE;
    if (level === 0) {
      if (nritems * ITEM_SIZE > room) throw corrupt(`tree block ${bytenr}: ${nritems} items do not fit`);
      let prev: Key | undefined;
      let dataEnd = room;
      for (let i = 0; i < nritems; i++) {
        const at = HEADER_SIZE + i * ITEM_SIZE;
        const key = readKey(data, at);
        const offset = data.readUInt32LE(at + KEY_SIZE);
        const size = data.readUInt32LE(at + KEY_SIZE + 4);
        if (prev && compareKeys(prev, key) >= 0) throw corrupt(`leaf ${bytenr}: keys out of order at slot ${i}`);
        // Item data grows down from the end of the block, each item's directly below the previous one's.
        if (offset + size !== dataEnd || offset < nritems * ITEM_SIZE) throw corrupt(`leaf ${bytenr}: item ${i} data at ${offset}+${size} is misplaced`);
        dataEnd = offset;
        block.items.push({ key, offset, size });
        prev = key;
      }
    } else {
      if (nritems === 0) throw corrupt(`node ${bytenr}: no children`);
      if (nritems * PTR_SIZE > room) throw corrupt(`node ${bytenr}: ${nritems} pointers do not fit`);
      let prev: Key | undefined;
      for (let i = 0; i < nritems; i++) {
        const at = HEADER_SIZE + i * PTR_SIZE;
        const key = readKey(data, at);
        if (prev && compareKeys(prev, key) >= 0) throw corrupt(`node ${bytenr}: keys out of order at slot ${i}`);
        block.ptrs.push({ key, blockptr: data.readBigUInt64LE(at + KEY_SIZE), generation: data.readBigUInt64LE(at + KEY_SIZE + 8) });
        prev = key;
      }
    }
    return block;
  }
}

