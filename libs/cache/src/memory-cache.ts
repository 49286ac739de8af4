import { LRUCache } from 'lru-cache';
import type { CacheHit, MetadataCache } from './metadata-cache';

/** Bytes charged per entry on top of key and value: the LRU's own bookkeeping. */
const ENTRY_OVERHEAD = 96;

export interface MemoryCacheOptions {
  /**
   * The clock ttls are measured against, in milliseconds (default: the
   * process's monotonic clock). Tests pass one they advance by hand.
   */
  now?: () => number;
}

/** The in-process tier: an LRU bounded by bytes, not entries. */
export class MemoryCache implements MetadataCache {
  private readonly lru: LRUCache<string, Buffer>;

  constructor(maxBytes: number, options: MemoryCacheOptions = {}) {
    const now = options.now;
    this.lru = new LRUCache<string, Buffer>({
      maxSize: Math.max(1, Math.floor(maxBytes)),
      sizeCalculation: (value, key) => value.length + key.length + ENTRY_OVERHEAD,
      // A value bigger than the whole cache is simply not kept.
      maxEntrySize: Math.max(1, Math.floor(maxBytes)),
      // The LRU memoises the time for ttlResolution ms of real time; a given clock is read every time instead.
      ...(now ? { perf: { now }, ttlResolution: 0 } : {}),
    });
  }

  get size(): number {
    return this.lru.calculatedSize;
  }

  /** Synchronous read, for the hot path that wants to skip a promise. */
  peek(key: string): Buffer | undefined {
    return this.lru.get(key);
  }

  async get(key: string): Promise<CacheHit | undefined> {
    const value = this.lru.get(key);
    return value ? { value, tier: 'memory' } : undefined;
  }

  async set(key: string, value: Buffer, ttlMs?: number): Promise<void> {
    this.lru.set(key, value, ttlMs ? { ttl: ttlMs } : undefined);
  }

  async close(): Promise<void> {
    this.lru.clear();
  }
}
