import { LRUCache } from 'lru-cache';
import type { Attr, DirEntry } from '@strata/protocol';
import { expiry, type Clock } from './expiry';

/** A whole directory: its own attributes and its entries, sorted bytewise by name (as the resolver sends them). */
export interface Listing {
  dir: Attr;
  entries: DirEntry[];
}

/** Index of `name` in a listing sorted bytewise, or -1. */
export function sortedIndexOf(entries: readonly DirEntry[], name: Buffer): number {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = Buffer.compare(entries[mid].name, name);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Complete directory listings by path, bounded in entries (a huge directory counts for its size). */
export class ListingCache {
  private readonly lru: LRUCache<string, Listing>;

  constructor(o: { entries: number; ttlMs?: number; clock?: Clock }) {
    this.lru = new LRUCache<string, Listing>({ maxSize: Math.max(o.entries, 1000), sizeCalculation: (l) => l.entries.length + 1, ...expiry(o.ttlMs, o.clock) });
  }

  get(key: string): Listing | undefined {
    return this.lru.get(key);
  }

  set(key: string, listing: Listing): void {
    this.lru.set(key, listing);
  }
}
