import { LRUCache } from 'lru-cache';
import type { MergedEntry } from '@strata/traversal';
import type { ExtentMapAnswer } from './extent-maps';

/** A directory listed and its first small files mapped (from their start), before anyone asked. */
export interface AheadBatch {
  entries: MergedEntry[];
  /** By name (latin1). */
  maps: ReadonlyMap<string, ExtentMapAnswer>;
}

/**
 * Batches held at once, the listing entries and map runs they may hold
 * together (a batch counts its own once made, one while it is being
 * made), and for how long one waits for its call: enough for the next
 * answer or two of a walk through a tree of small directories.
 */
const MAX_BATCHES = 128;
const MAX_HELD_WEIGHT = 262_144;
const BATCH_TTL_MS = 10_000;
/** Directories taken (or made for a call) remembered, so a walk ahead behind its reader does not make them again. */
const MAX_GONE = 4096;

/** What a batch holds: its listing's entries and its maps' runs. */
function weightOf(b: AheadBatch): number {
  let runs = 0;
  for (const m of b.maps.values()) runs += m.runs.length;
  return b.entries.length + runs + 1;
}

interface Held {
  batch: Promise<AheadBatch | undefined>;
}

/**
 * Directories mapped ahead of the call that will ask for them, each
 * answering one call at most (taken, not shared: a later call lists the
 * directory again), held a few seconds: what a reader going through a
 * tree asks next is ready, and what no reader asks for is dropped. A
 * directory taken (or made for its call) is not made ahead again for as
 * long: the reader is past it.
 */
export class AheadBatches {
  private readonly held = new LRUCache<string, Held>({ max: MAX_BATCHES, maxSize: MAX_HELD_WEIGHT, sizeCalculation: () => 1, ttl: BATCH_TTL_MS });
  private readonly gone = new LRUCache<string, true>({ max: MAX_GONE, ttl: BATCH_TTL_MS });

  /** Makes a batch for `key` unless one is held or its call has come; a failed one is simply not there. */
  offer(key: string, make: () => Promise<AheadBatch>): void {
    void this.ahead(key, make);
  }

  /**
   * offer, and the batch (waiting for it if under way) without taking it:
   * what a walk ahead needs to go on past the directory. Undefined when
   * the directory's call has come already, or the batch failed.
   */
  ahead(key: string, make: () => Promise<AheadBatch>): Promise<AheadBatch | undefined> {
    const held = this.held.peek(key);
    if (held) return held.batch;
    if (this.gone.has(key)) return Promise.resolve(undefined);
    const entry: Held = { batch: Promise.resolve(undefined) };
    entry.batch = make().then(
      (b) => {
        // Counted at its size once known (too large a batch is not held: its call lists it).
        if (this.held.peek(key) === entry) this.held.set(key, entry, { size: weightOf(b), noUpdateTTL: true });
        return b;
      },
      () => {
        if (this.held.peek(key) === entry) this.held.delete(key);
        return undefined;
      },
    );
    this.held.set(key, entry);
    return entry.batch;
  }

  /** Holds a batch already made for `key` (one a call made and left for its own call), whether or not its call came. */
  hold(key: string, batch: AheadBatch): void {
    this.gone.delete(key);
    this.held.set(key, { batch: Promise.resolve(batch) }, { size: weightOf(batch) });
  }

  /** The batch made for `key` (waiting for it if under way), taken out; undefined when none was made. */
  async take(key: string): Promise<AheadBatch | undefined> {
    this.gone.set(key, true);
    const held = this.held.get(key);
    if (held === undefined) return undefined;
    this.held.delete(key);
    return held.batch;
  }

  /** Whether a batch for `key` is held (made, or being made). */
  holds(key: string): boolean {
    return this.held.has(key);
  }

  get size(): number {
    return this.held.size;
  }
}
