import { LRUCache } from 'lru-cache';
import { expiry, type Clock } from './expiry';

/** Symlink targets by path. */
export class LinkCache {
  private readonly lru: LRUCache<string, Buffer>;

  constructor(o: { entries: number; ttlMs?: number; clock?: Clock }) {
    // maxSize counting each as one, not max: max allocates the whole table at each mount.
    this.lru = new LRUCache<string, Buffer>({ maxSize: Math.max(o.entries >> 2, 1000), sizeCalculation: () => 1, ...expiry(o.ttlMs, o.clock) });
  }

  get(key: string): Buffer | undefined {
    return this.lru.get(key);
  }

  set(key: string, target: Buffer): void {
    this.lru.set(key, target);
  }
}
