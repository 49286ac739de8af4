/** lru-cache options for a cache whose entries expire after `ttlMs` (LIVE layers); none for sealed ones. */
export function expiry(ttlMs: number | undefined): { ttl?: number; ttlAutopurge?: boolean } {
  return ttlMs === undefined ? {} : { ttl: ttlMs, ttlAutopurge: false };
}
