import { need } from './errors';

export const INODE_ITEM_SIZE = 160;

/** struct btrfs_inode_item: what stat(2) needs. Times are ns since the epoch. */
export interface InodeItem {
  generation: bigint;
  size: bigint;
  nbytes: bigint;
  nlink: number;
  uid: number;
  gid: number;
  mode: number;
  rdev: bigint;
  flags: bigint;
  atimeNs: bigint;
  ctimeNs: bigint;
  mtimeNs: bigint;
  otimeNs: bigint;
}

/** A btrfs_timespec (u64 seconds as the kernel reads them: signed in time64_t, u32 ns). */
export function readTimespec(buf: Buffer, at: number): bigint {
  return buf.readBigInt64LE(at) * 1_000_000_000n + BigInt(buf.readUInt32LE(at + 8));
}

export function parseInodeItem(buf: Buffer, at = 0): InodeItem {
  need(buf, at, INODE_ITEM_SIZE, 'inode item');
  return {
    generation: buf.readBigUInt64LE(at),
    size: buf.readBigUInt64LE(at + 16),
    nbytes: buf.readBigUInt64LE(at + 24),
    nlink: buf.readUInt32LE(at + 40),
    uid: buf.readUInt32LE(at + 44),
    gid: buf.readUInt32LE(at + 48),
    mode: buf.readUInt32LE(at + 52),
    rdev: buf.readBigUInt64LE(at + 56),
    flags: buf.readBigUInt64LE(at + 64),
    atimeNs: readTimespec(buf, at + 112),
    ctimeNs: readTimespec(buf, at + 124),
    mtimeNs: readTimespec(buf, at + 136),
    otimeNs: readTimespec(buf, at + 148),
  };
}
