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

/** Attributes by path, and the negative answers worth keeping (never an outage's EIO). */
export class AttrCache {
  private readonly lru: LRUCache<string, CachedAttr>;

  constructor(o: { entries: number; ttlMs?: number; clock?: Clock }) {
    this.lru = new LRUCache<string, CachedAttr>({ max: Math.max(o.entries, 1000), ...expiry(o.ttlMs, o.clock) });
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
