import { BlockReader } from './block-reader';
import { corrupt } from './corruption';
import { crc16 } from './crc16';
import { crc32c, crc32cU32, crc32cZeros } from './crc32c';
import { Incompat, RoCompat } from './features';
import { Superblock, groupFirstBlock, groupHasSuper, hasIncompat, hasRoCompat } from './superblock';

export const BG_INODE_UNINIT = 0x1;

export interface GroupDescriptor {
  group: number;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocks: number;
  freeInodes: number;
  flags: number;
  itableUnused: number;
  /** Why this descriptor cannot be trusted (checksum mismatch), if it cannot. */
  badReason: string | undefined;
}

/** Upper bound on the descriptor table read at open, far above any real filesystem's. */
const MAX_TABLE_BYTES = 64 * 1024 * 1024;

/** Block holding descriptor block `nr` (the kernel's descriptor_loc, including meta_bg placement). */
export function descriptorBlock(sb: Superblock, nr: number): number {
  const descPerBlock = sb.blockSize / sb.descSize;
  if (!hasIncompat(sb, Incompat.META_BG) || nr < sb.firstMetaBg) return sb.firstDataBlock + nr + 1;
  const group = descPerBlock * nr;
  let hasSuper = groupHasSuper(sb, group) ? 1 : 0;
  // A 1 KiB-block meta_bg filesystem whose first data block is 0 keeps group 0's table at block 2.
  if (sb.blockSize === 1024 && nr === 0 && sb.firstDataBlock === 0) hasSuper++;
  return hasSuper + groupFirstBlock(sb, group);
}

/** Number of descriptor-table blocks a group carries (counted as overhead by statfs). */
export function groupDescriptorBlocks(sb: Superblock, group: number): number {
  const descPerBlock = sb.blockSize / sb.descSize;
  const gdbCount = Math.ceil(sb.groupCount / descPerBlock);
  const metaGroup = Math.floor(group / descPerBlock);
  if (!hasIncompat(sb, Incompat.META_BG) || metaGroup < sb.firstMetaBg) {
    return groupHasSuper(sb, group) ? (hasIncompat(sb, Incompat.META_BG) ? sb.firstMetaBg : gdbCount) : 0;
  }
  const index = group % descPerBlock;
  return index === 0 || index === 1 || index === descPerBlock - 1 ? 1 : 0;
}

function checksum(sb: Superblock, group: number, raw: Buffer): number | undefined {
  if (hasRoCompat(sb, RoCompat.METADATA_CSUM)) {
    let c = crc32cU32(sb.checksumSeed, group);
    c = crc32c(c, raw, 0, 0x1e);
    c = crc32cZeros(c, 2);
    c = crc32c(c, raw, 0x20, sb.descSize);
    return c & 0xffff;
  }
  if (hasRoCompat(sb, RoCompat.GDT_CSUM)) {
    const g = Buffer.alloc(4);
    g.writeUInt32LE(group);
    let c = crc16(0xffff, sb.uuid);
    c = crc16(c, g);
    c = crc16(c, raw, 0, 0x1e);
    if (hasIncompat(sb, Incompat.BIT64)) c = crc16(c, raw, 0x20, sb.descSize);
    return c;
  }
  return undefined;
}

function parseOne(sb: Superblock, group: number, raw: Buffer): GroupDescriptor {
  const wide = hasIncompat(sb, Incompat.BIT64) && sb.descSize >= 64;
  const hi32 = (off: number): number => (wide ? raw.readUInt32LE(off) : 0);
  const hi16 = (off: number): number => (wide ? raw.readUInt16LE(off) : 0);
  const want = checksum(sb, group, raw);
  const stored = raw.readUInt16LE(0x1e);
  return {
    group,
    blockBitmap: hi32(0x20) * 0x1_0000_0000 + raw.readUInt32LE(0x0),
    inodeBitmap: hi32(0x24) * 0x1_0000_0000 + raw.readUInt32LE(0x4),
    inodeTable: hi32(0x28) * 0x1_0000_0000 + raw.readUInt32LE(0x8),
    freeBlocks: hi16(0x2c) * 0x10000 + raw.readUInt16LE(0xc),
    freeInodes: hi16(0x2e) * 0x10000 + raw.readUInt16LE(0xe),
    flags: raw.readUInt16LE(0x12),
    itableUnused: hi16(0x32) * 0x10000 + raw.readUInt16LE(0x1c),
    badReason:
      want === undefined || want === stored
        ? undefined
        : `checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${want.toString(16)})`,
  };
}

/** Reads every group descriptor (statfs needs their free counts, as the kernel sums them at mount). */
export async function readGroupDescriptors(sb: Superblock, reader: BlockReader): Promise<GroupDescriptor[]> {
  if (sb.groupCount * sb.descSize > MAX_TABLE_BYTES) {
    throw corrupt('superblock', `${sb.groupCount} block groups is more than this reader accepts`);
  }
  const descPerBlock = sb.blockSize / sb.descSize;
  const gdbCount = Math.ceil(sb.groupCount / descPerBlock);
  const out: GroupDescriptor[] = [];
  for (let nr = 0; nr < gdbCount; ) {
    // Outside meta_bg the table is contiguous: fetch it in runs.
    const block = descriptorBlock(sb, nr);
    let run = 1;
    while (nr + run < gdbCount && run < 256 && descriptorBlock(sb, nr + run) === block + run) run++;
    const blocks = await reader.metadataRun(block, run, 'group descriptor table');
    for (const mb of blocks) {
      for (let i = 0; i < descPerBlock && out.length < sb.groupCount; i++) {
        out.push(parseOne(sb, out.length, mb.data.subarray(i * sb.descSize, (i + 1) * sb.descSize)));
      }
    }
    nr += run;
  }
  return out;
}
