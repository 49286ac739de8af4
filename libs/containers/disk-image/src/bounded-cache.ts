import { LRUCache } from 'lru-cache';

export interface CacheCounters {
  hits: number;
  misses: number;
}

/**
 * A byte-bounded LRU of buffers whose concurrent loads of one key share one
 * read: many reads landing in one L2 table must not each fetch it.
 */
export class BoundedCache {
  private readonly lru: LRUCache<string, Buffer>;
  private readonly loading = new Map<string, Promise<Buffer>>();

  constructor(
    maxBytes: number,
    private readonly counters: CacheCounters,
  ) {
    this.lru = new LRUCache<string, Buffer>({ maxSize: Math.max(1, maxBytes), sizeCalculation: (b) => Math.max(1, b.length) });
  }

  get(key: string, load: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.lru.get(key);
    if (hit) {
      this.counters.hits++;
      return Promise.resolve(hit);
    }
    const pending = this.loading.get(key);
    if (pending) return pending;
    this.counters.misses++;
    const p = load().then(
      (buf) => {
        this.loading.delete(key);
        this.lru.set(key, buf);
        return buf;
      },
      (err: unknown) => {
        this.loading.delete(key);
        throw err;
      },
    );
    this.loading.set(key, p);
    return p;
  }

  clear(): void {
    this.lru.clear();
  }
}
