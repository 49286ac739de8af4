import { Errno, StrataError } from '@strata/errors';
import type { JournalContents, NodeJournal } from './node-journal';

/** The ino the kernel session knows the root by. */
export const ROOT_INO = 1n;

/** Inos above this are none of the table's (it counts them as numbers). */
const MAX_SAFE_INO = BigInt(Number.MAX_SAFE_INTEGER);

/** What the table asks before forgetting: the inos the session may still name (FuseSession.liveInos). */
export type LiveInos = () => Iterable<bigint>;

/** Told after a sweep (for the log). */
export type SweepReport = (r: { forgotten: number; kept: number; ms: number }) => void;

/**
 * The inos one mount hands the kernel session, one per path of the layer.
 * They are the session's identities for nodes, not st_ino (which the
 * attributes carry in full): two paths that are hard links of one file get
 * two inos and show the same st_ino, as on overlayfs. An ino is never
 * reused for another path while the mount lives, so a late request about a
 * node can never reach a different file.
 *
 * Bounded: once it holds more than a threshold, paths whose inos neither
 * the kernel nor the session's native cache can still name are forgotten
 * (a later lookup of such a path gets a new ino). The threshold then
 * becomes twice what stayed, so sweeps cost O(1) per lookup over time.
 *
 * With a journal, every new ino is on file before the answer naming it can
 * reach the kernel, and each sweep rewrites the file with what stayed: an
 * agent taking the mount over starts from it (`restored`).
 */
export class NodeTable {
  private readonly byKey = new Map<string, bigint>([['/', ROOT_INO]]);
  /**
   * By ino as a number: a Map hashes a number for far less than a bigint,
   * and inos are counted up from 1, never near 2^53 (a journal holding
   * one past that is refused as damaged).
   */
  private readonly byIno = new Map<number, string>([[1, '/']]);
  /** Inos handed out since the last sweep: an answer naming one may not have reached the session yet. */
  private fresh = new Set<number>();
  private next = 2;
  private live?: LiveInos;
  private report?: SweepReport;
  private threshold = Infinity;
  private minThreshold = Infinity;
  private scheduled = false;
  private journal?: NodeJournal;
  /** Inside batch(): new inos wait here for one write. */
  private pending?: [number, string][];

  /** A table continuing where `restored` (a predecessor's journal) left off. */
  constructor(restored?: JournalContents) {
    if (!restored) return;
    for (const [ino, key] of restored.nodes) {
      if (ino === ROOT_INO) continue;
      this.byIno.set(Number(ino), key);
      const had = this.byKey.get(key);
      // A path swept and looked up again has two inos on file: the later one is the table's.
      if (had === undefined || had < ino) this.byKey.set(key, ino);
    }
    if (Number(restored.next) > this.next) this.next = Number(restored.next);
  }

  /** From now on new inos go to `journal` (which starts as the table is now). */
  journalTo(journal: NodeJournal): void {
    this.journal = journal;
  }

  /** The inos handed out (the root included): what a predecessor's kernel may still name. */
  *inos(): IterableIterator<bigint> {
    for (const ino of this.byIno.keys()) yield BigInt(ino);
  }

  /** What a journal starts from: the next ino and every entry. */
  contents(): JournalContents {
    const nodes = new Map<bigint, string>();
    for (const [ino, key] of this.byIno) nodes.set(BigInt(ino), key);
    return { next: BigInt(this.next), nodes };
  }

  /** Runs `fn` (synchronous), writing the inos it hands out with one write at its end. */
  batch<T>(fn: () => T): T {
    if (!this.journal || this.pending) return fn();
    this.pending = [];
    try {
      return fn();
    } finally {
      const lines = this.pending;
      this.pending = undefined;
      this.journal.appendMany(lines);
    }
  }

  /** Sweeps from now on once the table holds more than `minSize` paths. */
  sweepWith(live: LiveInos, minSize: number, report?: SweepReport): void {
    this.live = live;
    this.report = report;
    this.minThreshold = Math.max(1, minSize);
    this.threshold = this.minThreshold;
  }

  get size(): number {
    return this.byIno.size;
  }

  /** The ino of the path at `key`, given one on first sight. */
  inoOf(key: string): bigint {
    const had = this.byKey.get(key);
    if (had !== undefined) {
      if (this.live) this.fresh.add(Number(had));
      return had;
    }
    const n = this.next++;
    const ino = BigInt(n);
    this.byKey.set(key, ino);
    this.byIno.set(n, key);
    if (this.pending) this.pending.push([n, key]);
    else this.journal?.append(n, key);
    if (this.byIno.size > this.threshold) this.schedule();
    if (this.live) this.fresh.add(n);
    return ino;
  }

  /** The path of an ino; ESTALE for one this table never handed out or has forgotten. */
  keyOf(ino: bigint): string {
    const key = ino <= MAX_SAFE_INO ? this.byIno.get(Number(ino)) : undefined;
    if (key === undefined) throw new StrataError(Errno.ESTALE, `no node ${ino} in this mount`);
    return key;
  }

  /**
   * After the current macrotask: handlers hand an ino to the session in the
   * same synchronous stretch that got it, so none is in between then.
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.sweep();
    });
  }

  /** Forgets every path whose ino is neither live nor fresh; returns how many went. */
  sweep(): number {
    if (!this.live) return 0;
    const started = performance.now();
    const keep = new Set<number>();
    for (const ino of this.live()) keep.add(Number(ino));
    let forgotten = 0;
    for (const [ino, key] of this.byIno) {
      if (ino === 1 || keep.has(ino) || this.fresh.has(ino)) continue;
      this.byIno.delete(ino);
      this.byKey.delete(key);
      forgotten++;
    }
    this.fresh = new Set();
    if (this.journal) {
      try {
        this.journal.rewrite(this.next, this.byIno);
      } catch {
        // The appended file still holds every ino (and more): a successor reads that one.
      }
    }
    this.threshold = Math.max(this.minThreshold, 2 * this.byIno.size);
    this.report?.({ forgotten, kept: this.byIno.size, ms: Math.round(performance.now() - started) });
    return forgotten;
  }
}
