/** What cache lifetimes are measured by, in milliseconds; tests pass a clock they move by hand. */
export interface Clock {
  now(): number;
}

/** lru-cache options that measure lifetimes by `clock` (by default, lru-cache's own `performance` clock). */
export function clockOptions(clock: Clock | undefined): { perf?: Clock; ttlResolution?: number } {
  // An injected clock is read on every check: lru-cache's 1 ms memo of the time would hide a clock moved by hand.
  return clock === undefined ? {} : { perf: clock, ttlResolution: 0 };
}

/** lru-cache options for a cache whose entries expire after `ttlMs` (LIVE layers); none for sealed ones. */
export function expiry(ttlMs: number | undefined, clock?: Clock): { ttl?: number; ttlAutopurge?: boolean; perf?: Clock; ttlResolution?: number } {
  return ttlMs === undefined ? {} : { ttl: ttlMs, ttlAutopurge: false, ...clockOptions(clock) };
}
