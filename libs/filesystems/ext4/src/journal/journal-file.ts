/**
 * The journal as recovery sees it: the journal inode's blocks, indexed by
 * log block number (0 is the journal superblock). The inode's extent tree or
 * block map is read once, before any replay (the kernel bmaps the journal
 * inode as it is on disk); log blocks are then read straight from the
 * source, never through the replayed view or a cache.
 */
import { refused } from '../corruption';
import type { BlockRun } from '../file-blocks';

export interface JournalFile {
  /** Log blocks recovery may read (the kernel's j_total_len). */
  readonly length: number;
  /** Filesystem block holding log block n; throws for a block past the journal or a hole. */
  physical(n: number): number;
  /** Log block n as it is in the source now. */
  read(n: number): Promise<Buffer>;
}

export function journalFile(runs: readonly BlockRun[], length: number, readBlock: (pblk: number) => Promise<Buffer>): JournalFile {
  const sorted = runs.filter((r) => !r.uninit).sort((a, b) => a.lblk - b.lblk);
  const physical = (n: number): number => {
    if (!Number.isSafeInteger(n) || n < 0 || n >= length) {
      throw refused('journal', `log block ${n} is past the end of the journal (${length} blocks)`);
    }
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid].lblk + sorted[mid].count <= n) lo = mid + 1;
      else hi = mid;
    }
    const run = sorted[lo];
    if (!run || run.lblk > n) throw refused('journal', `log block ${n} is not mapped (a hole in the journal inode)`);
    return run.pblk + (n - run.lblk);
  };
  return { length, physical, read: (n) => readBlock(physical(n)) };
}
