import { hasGroupDescCsum } from './superblock';
import { BlockReader, MetadataBlock } from './block-reader';
import { corrupt } from './corruption';
import { GroupDescriptor } from './group-descriptors';
import { Superblock } from './superblock';

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
  // A descriptor failing its checksum is still used, as a read-only mount
  // does (ext4_check_descriptors only refuses it read-write); its inode table
  // is checked like any other. The kernel's iget reads inodes of the
  // bg_itable_unused tail and of INODE_UNINIT groups from the table too: a
  // never-written slot reads as zeros, i.e. a deleted inode.
  const tableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
  if (gd.inodeTable <= sb.firstDataBlock || gd.inodeTable + tableBlocks > sb.blocksCount) {
    throw corrupt(`group descriptor ${group}`, `inode table at block ${gd.inodeTable} is outside the filesystem`);
  }
  const byteInTable = index * sb.inodeSize;
  const block = gd.inodeTable + Math.floor(byteInTable / sb.blockSize);
  // Read ahead within the part of the table in use (inodes past bg_itable_unused were never written), as ext4's inode readahead does.
  const used = hasGroupDescCsum(sb) ? Math.max(index + 1, sb.inodesPerGroup - gd.itableUnused) : sb.inodesPerGroup;
  const usedEnd = gd.inodeTable + Math.ceil((used * sb.inodeSize) / sb.blockSize);
  const mb = await reader.metadata(block, `inode table of group ${group}`, usedEnd);
  const offset = byteInTable % sb.blockSize;
  return { raw: mb.data.subarray(offset, offset + sb.inodeSize), block: mb };
}
