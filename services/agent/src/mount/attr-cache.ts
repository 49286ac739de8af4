import { LRUCache } from 'lru-cache';
import { Errno, isStrataError } from '@strata/errors';
import type { Attr } from '@strata/protocol';
import { expiry, type Clock } from './expiry';

/** A path's attributes, or the errno its lookup failed with. */
export type CachedAttr = { attr: Attr } | { errno: number };

/** Errors that are facts about the tree (safe to remember), not outages. */
function cacheableErrno(err: unknown): number | undefined {
  if (!isStrataError(err)) return undefined;
  return err.errno === Errno.ENOENT || err.errno === Errno.ENOTDIR || err.errno === Errno.ELOOP ? err.errno : undefined;
}

const one = (): number => 1;

/** Attributes by path, and the negative answers worth keeping (never an outage's EIO). */
export class AttrCache {
  private readonly lru: LRUCache<string, CachedAttr>;

  constructor(o: { entries: number; ttlMs?: number; clock?: Clock }) {
    // Bounded by count through maxSize, not max: max makes the LRU allocate its whole table at once (tens of ms at each mount).
    this.lru = new LRUCache<string, CachedAttr>({ maxSize: Math.max(o.entries, 1000), sizeCalculation: one, ...expiry(o.ttlMs, o.clock) });
  }

  get(key: string): CachedAttr | undefined {
    return this.lru.get(key);
  }

  set(key: string, attr: Attr): void {
    this.lru.set(key, { attr });
  }

  /** Remembers a failed lookup when the error says something about the tree. */
  failed(key: string, err: unknown): void {
    const errno = cacheableErrno(err);
    if (errno !== undefined) this.lru.set(key, { errno });
  }
}
