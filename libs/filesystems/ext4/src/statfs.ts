import { Incompat } from './features';
import { GroupDescriptor, groupDescriptorBlocks } from './group-descriptors';
import { Superblock, groupHasSuper, hasIncompat } from './superblock';
import type { Ext4StatFs } from './types';

/**
 * Blocks the kernel does not count in f_blocks: the superblock copies,
 * descriptor tables, reserved descriptor blocks, bitmaps and inode tables
 * of every group, the blocks before the first data block, and an internal
 * journal. A stored s_overhead_clusters takes precedence, as at mount.
 */
export function overheadBlocks(sb: Superblock, journalBlocks: number): number {
  if (sb.overheadClusters > 0 && sb.overheadClusters < sb.blocksCount) return sb.overheadClusters;
  const itbPerGroup = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
  let overhead = sb.firstDataBlock;
  for (let g = 0; g < sb.groupCount; g++) {
    const hasSuper = groupHasSuper(sb, g);
    overhead += (hasSuper ? 1 + sb.reservedGdtBlocks : 0) + groupDescriptorBlocks(sb, g) + itbPerGroup + 2;
  }
  return overhead + journalBlocks;
}

export function computeStatFs(sb: Superblock, groups: readonly GroupDescriptor[], overhead: number): Ext4StatFs {
  let free = 0;
  let freeInodes = 0;
  for (const g of groups) {
    free += g.freeBlocks;
    freeInodes += g.freeInodes;
  }
  // ext4 keeps 2% (at most 4096 clusters) back for extent-tree growth; ext2/ext3-style filesystems need none.
  const resv = hasIncompat(sb, Incompat.EXTENTS) ? Math.min(Math.floor(sb.blocksCount / 50), 4096) : 0;
  const reserved = sb.reservedBlocksCount + resv;
  return {
    bsize: sb.blockSize,
    frsize: sb.blockSize,
    blocks: sb.blocksCount - overhead,
    bfree: free,
    bavail: free > reserved ? free - reserved : 0,
    files: sb.inodesCount,
    ffree: freeInodes,
    namemax: 255,
  };
}
