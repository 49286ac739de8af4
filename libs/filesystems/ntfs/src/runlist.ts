import { corrupt } from './errors';

/** One run of clusters: `lcn` -1 is a hole (sparse, or the unused tail of a compression unit). */
export interface Run {
  vcn: number;
  lcn: number;
  length: number;
}

export const HOLE = -1;

/** At most this many runs in one attribute extent (a record of 64 KiB holds fewer). */
const MAX_RUNS = 1 << 16;

/**
 * Decodes mapping pairs: a header byte (low nibble: bytes of the run length,
 * high nibble: bytes of the signed LCN delta, 0 for a hole), then both
 * values little-endian; a 0 header ends the list. The runs must cover
 * exactly lowestVcn..highestVcn.
 */
export function decodeRunlist(buf: Buffer, start: number, end: number, lowestVcn: number, highestVcn: number, totalClusters: number, what: string): Run[] {
  const runs: Run[] = [];
  let pos = start;
  let vcn = lowestVcn;
  let lcn = 0;
  while (pos < end && buf[pos] !== 0) {
    if (runs.length >= MAX_RUNS) throw corrupt(what, 'too many runs');
    const header = buf[pos];
    const lenBytes = header & 0x0f;
    const ofsBytes = header >> 4;
    if (lenBytes === 0 || lenBytes > 8 || ofsBytes > 8 || pos + 1 + lenBytes + ofsBytes > end) throw corrupt(what, `mapping pair header 0x${header.toString(16)} at ${pos}`);
    const length = readSigned(buf, pos + 1, lenBytes);
    if (length <= 0 || !Number.isSafeInteger(vcn + length)) throw corrupt(what, `run length ${length}`);
    if (ofsBytes === 0) {
      runs.push({ vcn, lcn: HOLE, length });
    } else {
      lcn += readSigned(buf, pos + 1 + lenBytes, ofsBytes);
      if (!Number.isSafeInteger(lcn) || lcn < 0 || lcn + length > totalClusters) throw corrupt(what, `run of ${length} clusters at ${lcn} lies outside the volume (${totalClusters} clusters)`);
      runs.push({ vcn, lcn, length });
    }
    vcn += length;
    pos += 1 + lenBytes + ofsBytes;
  }
  if (highestVcn >= lowestVcn && vcn !== highestVcn + 1) throw corrupt(what, `runs cover VCNs ${lowestVcn}..${vcn - 1}, the header says ..${highestVcn}`);
  return runs;
}

function readSigned(buf: Buffer, at: number, n: number): number {
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[at + i]);
  if (buf[at + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) return Number.NaN;
  return Number(v);
}

/** Index of the run holding `vcn` (binary search), or -1. */
export function findRun(runs: readonly Run[], vcn: number): number {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid];
    if (vcn < r.vcn) hi = mid - 1;
    else if (vcn >= r.vcn + r.length) lo = mid + 1;
    else return mid;
  }
  return -1;
}
