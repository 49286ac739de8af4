/** The tiers a value can come from, for logs and metrics. */
export type CacheTier = 'memory' | 'redis';

export interface CacheHit {
  value: Buffer;
  tier: CacheTier;
}

/**
 * Where resolvers keep merged metadata. Keys are binary-safe latin1 strings
 * (one char per byte, because paths are bytes). A cache never fails a
 * request: an unreachable backend reads as a miss and drops writes.
 */
export interface MetadataCache {
  /**
   * ttlMs: the ttl the value was written with. A tier that copies a value
   * from a farther one gives the copy this ttl, so LIVE data never outlives it.
   */
  get(key: string, ttlMs?: number): Promise<CacheHit | undefined>;
  /** A synchronous in-process hit, when the cache has an in-process tier (the hot path skips a promise). */
  peek?(key: string): Buffer | undefined;
  /** ttlMs unset: kept until evicted (sealed chains never change). */
  set(key: string, value: Buffer, ttlMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** The subset of a pino logger the caches use. */
export interface CacheLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}
