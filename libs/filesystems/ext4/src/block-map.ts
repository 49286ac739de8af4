import { BlockReader } from './block-reader';
import { corrupt } from './corruption';
import type { BlockRun } from './file-blocks';
import type { InodeRecord } from './inode';
import { Superblock } from './superblock';

const DIRECT = 12;

/**
 * Maps logical blocks [start, end) through an ext2/ext3 indirect block map
 * (12 direct pointers, then single, double and triple indirect trees). A
 * zero pointer at any level is a hole for its whole subtree, skipped in one
 * step, so sparse files cost nothing to map.
 */
export async function mapIndirect(sb: Superblock, reader: BlockReader, inode: InodeRecord, start: number, end: number): Promise<BlockRun[]> {
  const per = sb.blockSize / 4;
  const spans = [1, per, per * per, per * per * per];
  const limit = DIRECT + spans[1] + spans[2] + spans[3];
  const out: BlockRun[] = [];
  const ino = inode.stat.ino;
  const check = (ptr: number, what: string): void => {
    if (ptr <= sb.firstDataBlock || ptr >= sb.blocksCount) {
      throw corrupt(`block map of inode ${ino}`, `${what} points to block ${ptr}, outside the filesystem`);
    }
  };
  let lblk = start;
  const stop = Math.min(end, limit);
  while (lblk < stop) {
    if (lblk < DIRECT) {
      const ptr = inode.iBlock.readUInt32LE(lblk * 4);
      if (ptr !== 0) {
        check(ptr, `direct pointer ${lblk}`);
        out.push({ lblk, count: 1, pblk: ptr, uninit: false });
      }
      lblk++;
      continue;
    }
    let rel = lblk - DIRECT;
    let level = 1;
    while (rel >= spans[level]) {
      rel -= spans[level];
      level++;
    }
    let ptr = inode.iBlock.readUInt32LE((DIRECT + level - 1) * 4);
    // Descend to the indirect block whose entries are data pointers.
    let covered = 0;
    for (let l = level; l >= 1; l--) {
      if (ptr === 0) {
        covered = spans[l] - (rel % spans[l]);
        break;
      }
      check(ptr, `level-${l} indirect block`);
      const mb = await reader.metadata(ptr, `indirect block ${ptr} of inode ${ino}`);
      const idx = Math.floor(rel / spans[l - 1]) % per;
      if (l === 1) {
        const n = Math.min(per - idx, stop - lblk);
        for (let i = 0; i < n; i++) {
          const p = mb.data.readUInt32LE((idx + i) * 4);
          if (p === 0) continue;
          check(p, `indirect entry ${idx + i}`);
          out.push({ lblk: lblk + i, count: 1, pblk: p, uninit: false });
        }
        covered = n;
        break;
      }
      ptr = mb.data.readUInt32LE(idx * 4);
      rel %= spans[l - 1];
    }
    lblk += Math.min(covered, stop - lblk);
  }
  return out;
}
