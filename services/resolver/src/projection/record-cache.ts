import type { CacheTier, MetadataCache } from '@strata/cache';
import type { ChainView } from '../chains';

export interface CacheCounters {
  hits: Record<CacheTier, number>;
  misses: number;
}

function toBuffer(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * The resolver's side of the metadata cache tiers: encoded records by key,
 * with the chain's lifetime, counted by tier, and each missing record
 * computed once however many requests want it at the same time.
 */
export class RecordCache {
  readonly counters: CacheCounters = { hits: { memory: 0, redis: 0 }, misses: 0 };
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(private readonly cache: MetadataCache) {}

  /** A record's bytes from the nearest tier that has them (an in-process hit without a promise). */
  async get(view: ChainView, key: string): Promise<Buffer | undefined> {
    const near = this.cache.peek?.(key);
    const hit = near ? { value: near, tier: 'memory' as const } : await this.cache.get(key, view.ttlMs);
    if (hit) this.counters.hits[hit.tier]++;
    else this.counters.misses++;
    return hit?.value;
  }

  /** A record's bytes if this process holds them, uncounted (a second look after something filled the cache). */
  peek(key: string): Buffer | undefined {
    return this.cache.peek?.(key);
  }

  /** Writes a record behind the request: a slow or absent Redis never delays the answer. */
  put(view: ChainView, key: string, encoded: Uint8Array): void {
    void this.cache.set(key, toBuffer(encoded), view.ttlMs);
  }

  /** Runs `compute` for a key unless a run for it is already under way, whose result is shared. */
  once<T>(key: string, compute: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const p = compute().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}
