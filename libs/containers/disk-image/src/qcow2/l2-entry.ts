import { StrataError } from '@strata/errors';

/** What one guest cluster (or one subcluster run of it) reads as. */
export type ClusterMapping =
  /** Read from the backing file, or zeros without one. */
  | { kind: 'backing' }
  | { kind: 'zero' }
  /** Host file offset of the guest cluster's first byte. */
  | { kind: 'data'; host: number }
  | { kind: 'compressed'; host: number; compressedSize: number }
  /** Extended L2: 32 subclusters, each allocated (at host + i * subclusterSize), zero, or backing. */
  | { kind: 'subclusters'; host: number; allocated: number; zero: number };

const TWO_32 = 2 ** 32;
/** Offsets are bits 9..55 of an entry: below 2^53 they fit a double exactly. */
const MAX_SAFE_HI = 2 ** 21;

/** Bits 9..55 of a table entry (L1 or standard L2), as a file offset. */
export function entryOffset(hi: number, lo: number): number {
  const hiBits = hi & 0x00ffffff;
  if (hiBits >= MAX_SAFE_HI) return Number.MAX_SAFE_INTEGER;
  return hiBits * TWO_32 + ((lo & 0xfffffe00) >>> 0);
}

export interface L2Geometry {
  clusterBits: number;
  clusterSize: number;
  extendedL2: boolean;
  fileSize: number;
  label: string;
}

function bad(g: L2Geometry, guestCluster: number, what: string): StrataError {
  return StrataError.corrupt(`qcow2 ${g.label}: corrupt L2 entry for guest offset ${guestCluster * g.clusterSize}: ${what}`);
}

/**
 * Decodes the L2 entry at `index` of `table` for guest cluster `guestCluster`.
 * Checks what reading relies on: data offsets cluster-aligned and inside the
 * file, subcluster bitmaps self-consistent (as qemu does, which calls the
 * same combinations invalid).
 */
export function decodeL2Entry(table: Buffer, index: number, guestCluster: number, g: L2Geometry): ClusterMapping {
  const at = index * (g.extendedL2 ? 16 : 8);
  const hi = table.readUInt32BE(at);
  const lo = table.readUInt32BE(at + 4);
  const compressed = (hi & 0x40000000) !== 0;

  if (compressed) {
    if (g.extendedL2 && (table.readUInt32BE(at + 8) !== 0 || table.readUInt32BE(at + 12) !== 0)) {
      throw bad(g, guestCluster, 'compressed cluster with a subcluster bitmap');
    }
    const desc = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo >>> 0);
    const shift = BigInt(70 - g.clusterBits);
    const host = Number(desc & ((1n << shift) - 1n));
    const sectors = Number((desc >> shift) & ((1n << BigInt(g.clusterBits - 8)) - 1n)) + 1;
    const compressedSize = sectors * 512 - (host % 512);
    if (host >= g.fileSize) throw bad(g, guestCluster, `compressed data at ${host} is past the end of the file`);
    return { kind: 'compressed', host, compressedSize };
  }

  const host = entryOffset(hi, lo);
  // Only the start is checked here: with subclusters the file may end inside
  // the cluster, and qemu reads what lies past the end of the file as zeros.
  const checkHost = (): void => {
    if (host % g.clusterSize !== 0) throw bad(g, guestCluster, `data offset ${host} is not cluster-aligned`);
    if (host >= g.fileSize) throw bad(g, guestCluster, `data cluster at ${host} is past the end of the file`);
  };

  if (g.extendedL2) {
    const zero = table.readUInt32BE(at + 8);
    const allocated = table.readUInt32BE(at + 12);
    if ((zero & allocated) !== 0) throw bad(g, guestCluster, 'subclusters both allocated and zero');
    if (host === 0) {
      if (allocated !== 0) throw bad(g, guestCluster, 'allocated subclusters without a host cluster');
      if (zero === 0) return { kind: 'backing' };
      if (zero === 0xffffffff) return { kind: 'zero' };
      return { kind: 'subclusters', host: 0, allocated: 0, zero };
    }
    if (allocated === 0 && zero === 0) return { kind: 'backing' };
    if (allocated === 0 && zero === 0xffffffff) return { kind: 'zero' };
    if (allocated !== 0) checkHost();
    if (allocated === 0xffffffff) return { kind: 'data', host };
    return { kind: 'subclusters', host, allocated, zero };
  }

  // Bit 0: reads as zeros whatever the offset says (preallocated or not).
  if ((lo & 1) !== 0) return { kind: 'zero' };
  if (host === 0) return { kind: 'backing' };
  checkHost();
  return { kind: 'data', host };
}
