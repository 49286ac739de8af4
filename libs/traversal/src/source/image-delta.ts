import type { Ext4 } from '@strata/ext4';
import { isDirMode } from '@strata/posix';

/** A run of filesystem blocks [start, end). */
export interface BlockRun {
  start: number;
  end: number;
}

/** Directory reads in flight while indexing, and block pairs compared at once. */
const CONCURRENCY = 16;
/** Deeper than PATH_MAX allows: a longer ".." chain is a loop in a corrupt filesystem. */
const MAX_DEPTH = 4096;
const DOTDOT = Buffer.from('..');

/**
 * The filesystem blocks a snapshot may have changed: the guest byte ranges
 * its own file answers (cut to the filesystem's window of the disk) plus
 * every block either side's journal replay replaces.
 */
export function changedBlockRuns(
  ownRanges: readonly { offset: number; length: number }[],
  volumeOffset: number,
  blockSize: number,
  blocksCount: number,
  replayed: Iterable<number>,
): BlockRun[] {
  const runs: BlockRun[] = [];
  for (const r of ownRanges) {
    const from = Math.max(0, r.offset - volumeOffset);
    const to = r.offset + r.length - volumeOffset;
    if (to <= 0) continue;
    const start = Math.floor(from / blockSize);
    const end = Math.min(blocksCount, Math.ceil(to / blockSize));
    if (end > start) runs.push({ start, end });
  }
  for (const b of replayed) if (b >= 0 && b < blocksCount) runs.push({ start: b, end: b + 1 });
  runs.sort((x, y) => x.start - y.start);
  const merged: BlockRun[] = [];
  for (const r of runs) {
    const last = merged[merged.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else merged.push({ ...r });
  }
  return merged;
}

/** Blocks of [start, end) that lie in the sorted runs. */
function* blocksIn(runs: readonly BlockRun[], start: number, end: number): Generator<number> {
  // Runs are few next to blocks; a binary search finds the first candidate.
  let lo = 0;
  let hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (runs[mid].end <= start) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < runs.length && runs[i].start < end; i++) {
    for (let b = Math.max(start, runs[i].start); b < Math.min(end, runs[i].end); b++) yield b;
  }
}

async function limited<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
}

/**
 * Inodes whose on-disk record differs between base and snapshot, found by
 * comparing only the inode-table blocks among the changed blocks. Any
 * change a reader can see moves the inode (ctime at least), so an inode
 * not listed here has the same attributes, entries and content on both sides.
 */
export async function changedInodes(base: Ext4, snap: Ext4, runs: readonly BlockRun[]): Promise<Set<number>> {
  const changed = new Set<number>();
  const perBlock = snap.blockSize / snap.inodeSize;
  const tables = new Map<number, { firstIno: number; inodes: number; block: number }>();
  // A group's initialised part may have grown in the snapshot: the larger of the two is compared.
  for (const t of [...base.inodeTables(), ...snap.inodeTables()]) {
    const known = tables.get(t.group);
    if (!known || t.inodes > known.inodes) tables.set(t.group, { firstIno: t.firstIno, inodes: t.inodes, block: t.block });
  }
  const work: { block: number; firstIno: number; slots: number }[] = [];
  for (const t of tables.values()) {
    const end = t.block + Math.ceil(t.inodes / perBlock);
    for (const b of blocksIn(runs, t.block, end)) {
      const firstIno = t.firstIno + (b - t.block) * perBlock;
      work.push({ block: b, firstIno, slots: Math.min(perBlock, t.firstIno + t.inodes - firstIno) });
    }
  }
  await limited(work, async (w) => {
    const [a, b] = await Promise.all([base.block(w.block), snap.block(w.block)]);
    const size = snap.inodeSize;
    for (let i = 0; i < w.slots; i++) {
      if (Buffer.compare(a.subarray(i * size, (i + 1) * size), b.subarray(i * size, (i + 1) * size)) !== 0) changed.add(w.firstIno + i);
    }
  });
  return changed;
}

/**
 * Every inode below a directory and the directories that list it: the one
 * thing ext4 does not record (a file has no parent pointer), so the base of
 * many snapshots is indexed once. Reads directories only, never a file's inode.
 */
export class ParentIndex {
  private readonly parents = new Map<number, number | number[]>();

  private constructor(readonly rootIno: number) {}

  static async build(fs: Ext4, rootIno: number): Promise<ParentIndex> {
    const index = new ParentIndex(rootIno);
    const seen = new Set<number>([rootIno]);
    let level = [rootIno];
    while (level.length > 0) {
      const next: number[] = [];
      await limited(level, async (dir) => {
        for (const e of await fs.readdir(dir)) {
          index.add(e.ino, dir);
          const isDir = e.type === 'dir' || (e.type === 'unknown' && isDirMode((await fs.inode(e.ino)).mode));
          if (isDir && !seen.has(e.ino)) {
            seen.add(e.ino);
            next.push(e.ino);
          }
        }
      });
      level = next;
    }
    return index;
  }

  private add(ino: number, dir: number): void {
    const known = this.parents.get(ino);
    if (known === undefined) this.parents.set(ino, dir);
    else if (typeof known === 'number') {
      if (known !== dir) this.parents.set(ino, [known, dir]);
    } else if (!known.includes(dir)) known.push(dir);
  }

  /** The directories listing `ino` (several for a hard-linked file). */
  of(ino: number): readonly number[] {
    const known = this.parents.get(ino);
    return known === undefined ? [] : typeof known === 'number' ? [known] : known;
  }

  get size(): number {
    return this.parents.size;
  }
}

/**
 * Where a snapshot can differ from its base: its changed inodes and every
 * directory above one of them, on either side. Whatever is in neither set
 * is the same object with the same subtree on both sides.
 */
export class ImageDelta {
  private constructor(
    readonly changed: ReadonlySet<number>,
    readonly dirty: ReadonlySet<number>,
  ) {}

  static async compute(base: Ext4, snap: Ext4, rootIno: number, runs: readonly BlockRun[], baseParents: ParentIndex): Promise<ImageDelta> {
    const changed = await changedInodes(base, snap, runs);
    const dirty = new Set<number>();
    const up = async (start: number[], parentsOf: (ino: number) => Promise<readonly number[]>): Promise<void> => {
      let frontier = start;
      for (let depth = 0; frontier.length > 0 && depth < MAX_DEPTH; depth++) {
        const next: number[] = [];
        for (const ino of frontier) {
          if (ino === rootIno) continue;
          for (const p of await parentsOf(ino)) {
            if (!dirty.has(p)) {
              dirty.add(p);
              next.push(p);
            }
          }
        }
        frontier = next;
      }
    };
    // The base side: everything above a changed inode, hard links included.
    await up([...changed], async (ino) => baseParents.of(ino));
    // The snapshot side: a directory moved or created there hangs below directories that changed too;
    // its ".." names them. Files need no index here: a new link of a file changes the directory that holds it.
    const parentInSnap = async (ino: number): Promise<readonly number[]> => {
      try {
        if (!isDirMode((await snap.inode(ino)).mode)) return [];
        const p = await snap.lookup(ino, DOTDOT);
        return p === undefined || p === ino ? [] : [p];
      } catch {
        // Freed in the snapshot: the base side already named its parents.
        return [];
      }
    };
    await up([...changed], parentInSnap);
    return new ImageDelta(changed, dirty);
  }

  /** Same inode, unchanged, nothing changed below it. */
  unchanged(baseIno: number, snapIno: number): boolean {
    return baseIno === snapIno && !this.changed.has(baseIno) && !this.dirty.has(baseIno);
  }
}
