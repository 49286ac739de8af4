import { crcMatches } from './checksum';
import { corrupt } from './errors';
import type { Volume } from './volume';

const REFC_CRC_MAGIC = 0x52334643; // 'R3FC'
const SBLOCK_V5_SIZE = 56;
const SBLOCK_CRC_OFFSET = 52;
const COW_FLAG = 0x80000000;
const MAX_LEVELS = 9;

/**
 * Blocks held as copy-on-write staging extents in one AG's refcount btree
 * (records in the CoW domain). Log recovery ends by freeing them all
 * (xfs_reflink_recover_cow); a clean unmount leaves none.
 */
export async function cowStagingBlocks(vol: Volume, agno: number, root: number, levels: number, treeBlocks: number): Promise<number> {
  const { sb } = vol;
  const what = `refcount btree of AG ${agno}`;
  if (levels === 0 || levels > MAX_LEVELS || root === 0 || root >= sb.agBlocks) throw corrupt(what, `root ${root} at level ${levels}`);
  let total = 0;
  let visited = 0;
  const walk = async (agbno: number, level: number): Promise<void> => {
    if (++visited > Math.max(treeBlocks, 1) + 1) throw corrupt(what, 'more blocks than the AGF counts');
    if (agbno === 0 || agbno >= sb.agBlocks) throw corrupt(what, `block ${agbno} is outside the AG`);
    const buf = (await vol.reader.metadata((agno * sb.agBlocks + agbno) * sb.blockSize, sb.blockSize, what)).data;
    if (buf.readUInt32BE(0) !== REFC_CRC_MAGIC || !crcMatches(buf, 0, sb.blockSize, SBLOCK_CRC_OFFSET)) throw corrupt(what, `block ${agbno}: bad magic or CRC`);
    if (buf.readUInt16BE(4) !== level) throw corrupt(what, `block ${agbno}: level ${buf.readUInt16BE(4)}, expected ${level}`);
    const numrecs = buf.readUInt16BE(6);
    if (level === 0) {
      if (SBLOCK_V5_SIZE + numrecs * 12 > sb.blockSize) throw corrupt(what, `block ${agbno}: ${numrecs} records`);
      for (let i = 0; i < numrecs; i++) {
        const at = SBLOCK_V5_SIZE + i * 12;
        if (buf.readUInt32BE(at) & COW_FLAG) total += buf.readUInt32BE(at + 4);
      }
      return;
    }
    const maxrecs = Math.floor((sb.blockSize - SBLOCK_V5_SIZE) / 8);
    if (numrecs > maxrecs) throw corrupt(what, `block ${agbno}: ${numrecs} records`);
    for (let i = 0; i < numrecs; i++) await walk(buf.readUInt32BE(SBLOCK_V5_SIZE + maxrecs * 4 + i * 4), level - 1);
  };
  await walk(root, levels - 1);
  return total;
}
