import { LRUCache } from 'lru-cache';
import { GrpcCode, StrataError } from '@strata/errors';
import { clockOptions, type Clock } from './expiry';
import { recycleAnswer } from '@strata/client';

/** File data moves in aligned chunks of this size: one Session read each. */
export const CHUNK_SIZE = 1 << 20;

/**
 * How long a fetch that no resolver answered stands for the same chunk. The
 * kernel asks for a page again at once when its readahead failed; without
 * this, one read of an uncached file with every resolver down would wait
 * two deadlines instead of one.
 */
export const FAILURE_MEMO_MS = 1000;
/** Bound on remembered failures (one per chunk asked during an outage). */
const MAX_FAILURES = 4096;

/** A failure that says nothing about the file: no resolver answered in time. */
function isOutage(err: unknown): boolean {
  const e = StrataError.from(err);
  return e.retryable || e.code === GrpcCode.DEADLINE_EXCEEDED;
}

/**
 * The agent's data cache, shared by every mount and bounded in bytes.
 * Concurrent readers of the same chunk share one fetch.
 */
export class ChunkCache {
  private readonly lru: LRUCache<string, Buffer>;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private readonly failures = new Map<string, { at: number; err: unknown }>();
  private readonly now: () => number;
  hits = 0;
  misses = 0;

  /** `clock` measures the lifetimes of LIVE chunks and of remembered outage failures. */
  constructor(maxBytes: number, clock?: Clock) {
    this.lru = new LRUCache<string, Buffer>({
      maxSize: Math.max(maxBytes, CHUNK_SIZE),
      sizeCalculation: (b) => Math.max(b.length, 1),
      // An evicted chunk's buffer is read into again once nobody holds it (@strata/client answer-buffers): no fresh 1 MiB per chunk.
      dispose: (b, _key, reason) => {
        if (reason === 'evict') recycleAnswer(b);
      },
      ...clockOptions(clock),
    });
    this.now = clock ? () => clock.now() : () => performance.now();
  }

  /** Bytes held now, and the bound. */
  get usage(): { bytes: number; maxBytes: number } {
    return { bytes: this.lru.calculatedSize, maxBytes: this.lru.maxSize };
  }

  peek(key: string): Buffer | undefined {
    const b = this.lru.get(key);
    if (b) this.hits++;
    return b;
  }

  /** The chunk from the cache, or fetched once however many callers ask. `ttlMs` bounds it for LIVE layers. */
  get(key: string, fetch: () => Promise<Buffer>, ttlMs?: number): Promise<Buffer> {
    const hit = this.peek(key);
    if (hit) return Promise.resolve(hit);
    const running = this.inflight.get(key);
    if (running) return running;
    const failed = this.failures.get(key);
    if (failed && this.now() - failed.at < FAILURE_MEMO_MS) return Promise.reject(failed.err);
    this.failures.delete(key);
    this.misses++;
    const p = fetch().then(
      (b) => {
        this.inflight.delete(key);
        this.lru.set(key, b, ttlMs === undefined ? undefined : { ttl: ttlMs });
        return b;
      },
      (err: unknown) => {
        this.inflight.delete(key);
        if (isOutage(err)) {
          if (this.failures.size >= MAX_FAILURES) this.failures.clear();
          this.failures.set(key, { at: this.now(), err });
        }
        throw err;
      },
    );
    this.inflight.set(key, p);
    return p;
  }

  /** Starts fetching a chunk nobody waits for yet (readahead); failures are left to the real read. */
  prefetch(key: string, fetch: () => Promise<Buffer>, ttlMs?: number): void {
    if (this.lru.has(key) || this.inflight.has(key)) return;
    this.get(key, fetch, ttlMs).catch(() => undefined);
  }

  /** Forgets one chunk (a fetch of it in progress still answers its callers, and is then kept). */
  delete(key: string): void {
    this.lru.delete(key);
  }

  /** Forgets every chunk whose key starts with `prefix` (a mount going away). */
  drop(prefix: string): void {
    for (const k of this.lru.keys()) if (k.startsWith(prefix)) this.lru.delete(k);
  }
}
