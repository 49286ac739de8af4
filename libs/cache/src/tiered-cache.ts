import type { CacheHit, MetadataCache } from './metadata-cache';
import type { MemoryCache } from './memory-cache';

/**
 * The in-process LRU in front of a shared tier (Redis): repeated requests
 * never leave the process, and a value one replica computed is found by
 * the others.
 */
export class TieredCache implements MetadataCache {
  constructor(
    readonly near: MemoryCache,
    readonly far: MetadataCache,
  ) {}

  peek(key: string): Buffer | undefined {
    return this.near.peek(key);
  }

  async get(key: string, ttlMs?: number): Promise<CacheHit | undefined> {
    const hit = this.near.peek(key);
    if (hit) return { value: hit, tier: 'memory' };
    const far = await this.far.get(key, ttlMs);
    if (far) await this.near.set(key, far.value, ttlMs);
    return far;
  }

  async set(key: string, value: Buffer, ttlMs?: number): Promise<void> {
    await this.near.set(key, value, ttlMs);
    await this.far.set(key, value, ttlMs);
  }

  async close(): Promise<void> {
    await Promise.all([this.near.close(), this.far.close()]);
  }
}
