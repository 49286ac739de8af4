import type { CacheLog, MetadataCache } from './metadata-cache';
import { MemoryCache } from './memory-cache';
import { RedisCache } from './redis-cache';
import { TieredCache } from './tiered-cache';

export interface OpenCacheOptions {
  /** Size of the in-process tier. */
  memoryBytes: number;
  /** Shared tier; none: in-process only. */
  redisUrl?: string;
  redisCommandTimeoutMs?: number;
  log: CacheLog;
}

export interface OpenedCache {
  cache: MetadataCache;
  memory: MemoryCache;
  redis?: RedisCache;
}

export function openCache(options: OpenCacheOptions): OpenedCache {
  const memory = new MemoryCache(options.memoryBytes);
  if (!options.redisUrl) return { cache: memory, memory };
  const redis = new RedisCache(options.redisUrl, { log: options.log, commandTimeoutMs: options.redisCommandTimeoutMs });
  return { cache: new TieredCache(memory, redis), memory, redis };
}
