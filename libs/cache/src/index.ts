export type { MetadataCache, CacheHit, CacheTier, CacheLog } from './metadata-cache';
export { MemoryCache } from './memory-cache';
export { RedisCache, parseClusterNodes } from './redis-cache';
export type { RedisCacheOptions } from './redis-cache';
export { TieredCache } from './tiered-cache';
export { openCache } from './open-cache';
export type { OpenCacheOptions, OpenedCache } from './open-cache';
export { chainKey, recordKey } from './keys';
export type { ChainMember, RecordKind } from './keys';
