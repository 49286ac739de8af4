import { corrupt } from './errors';
import type { Superblock } from './superblock';

/**
 * Address arithmetic. XFS block numbers in files and btrees are "fsblocks":
 * the AG number above agblklog bits of AG-relative block; inode numbers put
 * the inode's slot in its block below those (inopblog bits).
 */
export interface InodeLocation {
  agno: number;
  agbno: number;
  slot: number;
  /** Byte offset of the inode in the volume. */
  offset: number;
}

/** The linear block index (0..dblocks) of an fsblock, or throws naming `what`. */
export function fsbToLinear(sb: Superblock, fsb: number, what: string): number {
  const agSpan = 2 ** sb.agBlkLog;
  const agno = Math.floor(fsb / agSpan);
  const agbno = fsb - agno * agSpan;
  const linear = agno * sb.agBlocks + agbno;
  if (!Number.isSafeInteger(fsb) || fsb < 0 || agno >= sb.agCount || agbno >= sb.agBlocks || linear >= sb.dblocks) {
    throw corrupt(what, `block ${fsb} (AG ${agno} block ${agbno}) is outside the filesystem`);
  }
  return linear;
}

/** Whether `count` blocks from fsblock `fsb` stay in one AG and inside the filesystem. */
export function checkExtent(sb: Superblock, fsb: number, count: number, what: string): number {
  const linear = fsbToLinear(sb, fsb, what);
  const agbno = linear % sb.agBlocks;
  if (count <= 0 || agbno + count > sb.agBlocks || linear + count > sb.dblocks) {
    throw corrupt(what, `extent of ${count} blocks at ${fsb} leaves its allocation group`);
  }
  return linear;
}

/** Where inode `ino` lives (xfs_verify_ino: inside an AG, past the AG headers). */
export function locateInode(sb: Superblock, ino: number): InodeLocation | undefined {
  if (!Number.isSafeInteger(ino) || ino <= 0) return undefined;
  const perAg = 2 ** (sb.agBlkLog + sb.inopbLog);
  const agno = Math.floor(ino / perAg);
  const agino = ino - agno * perAg;
  const agbno = Math.floor(agino / sb.inodesPerBlock);
  const slot = agino % sb.inodesPerBlock;
  if (agno >= sb.agCount || agbno >= sb.agBlocks) return undefined;
  const linear = agno * sb.agBlocks + agbno;
  if (linear >= sb.dblocks) return undefined;
  // The first blocks of an AG hold its headers (sb, agf, agi, agfl): no inode lives there.
  const headerBytes = 4 * sb.sectSize;
  if (agbno * sb.blockSize + slot * sb.inodeSize < headerBytes) return undefined;
  return { agno, agbno, slot, offset: linear * sb.blockSize + slot * sb.inodeSize };
}

/**
 * Blocks per inode cluster (the unit the kernel reads inodes in): 8 KiB,
 * scaled with the inode size on v5 when chunks are aligned to it.
 */
export function inodeClusterBlocks(sb: Superblock): number {
  let bytes = 8192;
  if (sb.crc && sb.inoAlignMt >= (bytes * (sb.inodeSize / 256)) / sb.blockSize) bytes *= sb.inodeSize / 256;
  return Math.max(1, bytes / sb.blockSize);
}
