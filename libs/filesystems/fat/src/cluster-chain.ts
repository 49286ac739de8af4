/**
 * Cluster chains as runs of contiguous clusters, walked as fat_get_cluster
 * walks them: a start or next cluster outside 2..maxCluster-1 is corrupt, a
 * free entry inside a chain is corrupt, and a loop is corrupt. Loops are
 * found with Brent's method (constant memory, at most about twice the chain
 * plus loop length in steps), so a hostile FAT cannot make a walk unbounded.
 */
import { corrupt } from './errors';
import { FAT_EOF, FAT_FREE, type FatTable } from './fat-table';

export interface Run {
  /** First cluster of the run. */
  cluster: number;
  /** Contiguous clusters. */
  count: number;
  /** Index of the run's first cluster within the chain. */
  index: number;
}

export interface Chain {
  runs: Run[];
  /** Clusters walked (at most the limit asked for). */
  length: number;
  /** The walk reached the end-of-chain mark (false when it stopped at the limit). */
  ended: boolean;
}

/**
 * Walks the chain from `start` for at most `limit` clusters. `what` names
 * the owner in errors.
 */
export async function walkChain(fat: FatTable, start: number, limit: number, maxCluster: number, what: string): Promise<Chain> {
  if (start < 2 || start >= maxCluster) throw corrupt(what, `invalid start cluster ${start}`);
  const runs: Run[] = [];
  let current = start;
  let length = 0;
  let tortoise = start;
  let power = 1;
  let steps = 0;
  for (;;) {
    const last = runs[runs.length - 1];
    if (last && last.cluster + last.count === current) last.count++;
    else runs.push({ cluster: current, count: 1, index: length });
    length++;
    if (length >= limit) return { runs, length, ended: false };
    const next = await fat.next(current);
    if (next === FAT_EOF) return { runs, length, ended: true };
    if (next === FAT_FREE) throw corrupt(what, `cluster chain runs into a free cluster after cluster ${current}`);
    if (next < 2 || next >= maxCluster) throw corrupt(what, `cluster ${current} points to invalid cluster ${next}`);
    if (next === tortoise) throw corrupt(what, `cluster chain loops back to cluster ${next}`);
    steps++;
    if (steps === power) {
      tortoise = next;
      power *= 2;
      steps = 0;
    }
    current = next;
  }
}

/** The cluster at chain index `i`, from the runs. */
export function clusterAt(chain: Chain, i: number): number | undefined {
  let lo = 0;
  let hi = chain.runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = chain.runs[mid];
    if (!r) return undefined;
    if (i < r.index) hi = mid - 1;
    else if (i >= r.index + r.count) lo = mid + 1;
    else return r.cluster + (i - r.index);
  }
  return undefined;
}
