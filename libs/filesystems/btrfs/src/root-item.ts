import { need } from './errors';
import { INODE_ITEM_SIZE } from './inode-item';

/** struct btrfs_root_item: where a tree starts, and a subvolume's root directory. */
export interface RootItem {
  generation: bigint;
  rootDirid: bigint;
  bytenr: bigint;
  bytesUsed: bigint;
  flags: bigint;
  refs: number;
  level: number;
}

export function parseRootItem(buf: Buffer): RootItem {
  // Old (pre-3.x) root items end after `level` (239 bytes); the rest is optional.
  need(buf, 0, INODE_ITEM_SIZE + 79, 'root item');
  return {
    generation: buf.readBigUInt64LE(160),
    rootDirid: buf.readBigUInt64LE(168),
    bytenr: buf.readBigUInt64LE(176),
    bytesUsed: buf.readBigUInt64LE(192),
    flags: buf.readBigUInt64LE(208),
    refs: buf.readUInt32LE(216),
    level: buf[238],
  };
}

/** struct btrfs_root_ref (ROOT_REF and ROOT_BACKREF): the directory and name a subvolume hangs under. */
export interface RootRef {
  dirid: bigint;
  sequence: bigint;
  name: Buffer;
}

export function parseRootRef(buf: Buffer): RootRef {
  need(buf, 0, 18, 'root ref');
  const len = buf.readUInt16LE(16);
  need(buf, 18, len, 'root ref name');
  return { dirid: buf.readBigUInt64LE(0), sequence: buf.readBigUInt64LE(8), name: buf.subarray(18, 18 + len) };
}
