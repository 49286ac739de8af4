import { LRUCache } from 'lru-cache';
import type { MergedEntry } from '@strata/traversal';
import type { ExtentMapAnswer } from './extent-maps';

/** A directory listed and its first small files mapped (from their start), before anyone asked. */
export interface AheadBatch {
  entries: MergedEntry[];
  /** By name (latin1). */
  maps: ReadonlyMap<string, ExtentMapAnswer>;
}

/** Batches held at once, and for how long one waits for its call. */
const MAX_BATCHES = 8;
const BATCH_TTL_MS = 10_000;

/**
 * Directories mapped ahead of the call that will ask for them, each
 * answering one call at most (taken, not shared: a later call lists the
 * directory again), held a few seconds: what a reader going through a
 * tree asks next is ready, and what no reader asks for is dropped.
 */
export class AheadBatches {
  private readonly held = new LRUCache<string, Promise<AheadBatch | undefined>>({ max: MAX_BATCHES, ttl: BATCH_TTL_MS });

  /** Makes a batch for `key` unless one is held; a failed one is simply not there. */
  offer(key: string, make: () => Promise<AheadBatch>): void {
    if (this.held.has(key)) return;
    this.held.set(
      key,
      make().catch(() => undefined),
    );
  }

  /** The batch made for `key` (waiting for it if under way), taken out; undefined when none was made. */
  async take(key: string): Promise<AheadBatch | undefined> {
    const batch = this.held.get(key);
    if (batch === undefined) return undefined;
    this.held.delete(key);
    return batch;
  }

  get size(): number {
    return this.held.size;
  }
}
