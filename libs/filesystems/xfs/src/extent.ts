import { corrupt } from './errors';
import { checkExtent } from './geometry';
import type { Superblock } from './superblock';

/** One mapping of a fork: file blocks [offset, offset+count) at linear volume block `block`. */
export interface Extent {
  offset: number;
  block: number;
  count: number;
  /** Preallocated, never written: reads as zeros. */
  unwritten: boolean;
}

export const EXTENT_RECORD_SIZE = 16;
const MASK_9 = (1n << 9n) - 1n;
const MASK_21 = (1n << 21n) - 1n;
const MASK_54 = (1n << 54n) - 1n;

/**
 * Decodes a packed 128-bit extent record (xfs_bmbt_rec): 1 bit unwritten
 * flag, 54 bits file offset, 52 bits fsblock, 21 bits length.
 */
export function decodeExtent(sb: Superblock, buf: Buffer, off: number, what: string): Extent {
  const l0 = buf.readBigUInt64BE(off);
  const l1 = buf.readBigUInt64BE(off + 8);
  const unwritten = l0 >> 63n === 1n;
  const offset = Number((l0 >> 9n) & MASK_54);
  const fsb = Number(((l0 & MASK_9) << 43n) | (l1 >> 21n));
  const count = Number(l1 & MASK_21);
  if (count === 0) throw corrupt(what, `empty extent at file block ${offset}`);
  const block = checkExtent(sb, fsb, count, what);
  return { offset, block, count, unwritten };
}

/** Checks that extents are in file order without overlaps (xfs_iext order), as the kernel's bmap code assumes. */
export function checkOrder(extents: readonly Extent[], what: string): void {
  for (let i = 1; i < extents.length; i++) {
    const prev = extents[i - 1];
    if (extents[i].offset < prev.offset + prev.count) throw corrupt(what, `extents out of order at file block ${extents[i].offset}`);
  }
}

/** Index of the last extent starting at or before file block `fb` (-1 if none). */
export function findExtent(extents: readonly Extent[], fb: number): number {
  let lo = 0;
  let hi = extents.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (extents[mid].offset <= fb) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}
