import { BlockReader, MetadataBlock } from './block-reader';
import { corrupt } from './corruption';
import { BG_INODE_UNINIT, GroupDescriptor } from './group-descriptors';
import { Superblock, hasGroupDescCsum } from './superblock';

/** Locates and reads the raw bytes of one inode in its group's inode table. */
export async function readRawInode(
  sb: Superblock,
  groups: readonly GroupDescriptor[],
  reader: BlockReader,
  ino: number,
): Promise<{ raw: Buffer; block: MetadataBlock }> {
  const what = `inode ${ino}`;
  if (!Number.isSafeInteger(ino) || ino < 1 || ino > sb.inodesCount) {
    throw corrupt(what, `inode number out of range 1..${sb.inodesCount}`);
  }
  const group = Math.floor((ino - 1) / sb.inodesPerGroup);
  const index = (ino - 1) % sb.inodesPerGroup;
  const gd = groups[group];
  if (!gd) throw corrupt(what, `group ${group} has no descriptor`);
  if (gd.badReason) throw corrupt(`group descriptor ${group}`, gd.badReason);
  if (hasGroupDescCsum(sb)) {
    // Inodes of a never-initialised part of the table are free whatever the table blocks hold.
    if (gd.flags & BG_INODE_UNINIT || index >= sb.inodesPerGroup - gd.itableUnused) {
      throw corrupt(what, 'unused inode (uninitialised inode table)');
    }
  }
  const tableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
  if (gd.inodeTable <= sb.firstDataBlock || gd.inodeTable + tableBlocks > sb.blocksCount) {
    throw corrupt(`group descriptor ${group}`, `inode table at block ${gd.inodeTable} is outside the filesystem`);
  }
  const byteInTable = index * sb.inodeSize;
  const block = gd.inodeTable + Math.floor(byteInTable / sb.blockSize);
  const mb = await reader.metadata(block, `inode table of group ${group}`);
  const offset = byteInTable % sb.blockSize;
  return { raw: mb.data.subarray(offset, offset + sb.inodeSize), block: mb };
}
