import { LRUCache } from 'lru-cache';
import { Errno, StrataError, isStrataError } from '@strata/errors';
import type { ByteSource } from '@strata/filesystem';
import { corrupt } from './errors';
import type { SectorOverlay } from './log/sector-overlay';

/** A cached metadata buffer, with the checks already passed on it (like the kernel's verified buffers). */
export interface MetaBuffer {
  readonly data: Buffer;
  readonly verified: Set<string>;
}

/** Largest single read handed to the source. */
export const MAX_SOURCE_READ = 8 * 1024 * 1024;

/**
 * Every read of the volume goes through here: metadata ranges are cached in
 * a bounded LRU keyed by their byte range; data runs are read straight
 * through in chunks of at most 8 MiB.
 */
export class MetadataReader {
  private readonly cache: LRUCache<string, MetaBuffer>;

  constructor(
    private readonly source: ByteSource,
    private readonly limit: number,
    cacheBytes: number,
    private readonly overlay?: SectorOverlay,
  ) {
    this.cache = new LRUCache<string, MetaBuffer>({ maxSize: Math.max(cacheBytes, 1 << 16), sizeCalculation: (m) => m.data.length + 64 });
  }

  private async raw(offset: number, length: number, what: string): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.limit) {
      throw corrupt(what, `${length} bytes at ${offset} lie outside the filesystem`);
    }
    if (length === 0) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for (let done = 0; done < length; ) {
      const n = Math.min(MAX_SOURCE_READ, length - done);
      const buf = await this.readSource(offset + done, n, what);
      if (buf.length < n) throw corrupt(what, `short read at byte ${offset + done} (image truncated?)`);
      parts.push(buf.length === n ? buf : buf.subarray(0, n));
      done += n;
    }
    const out = parts.length === 1 ? parts[0] : Buffer.concat(parts, length);
    return this.overlay ? this.overlay.patch(offset, out) : out;
  }

  /** A failing source is an unreadable range (EIO), not damage to the filesystem. */
  private async readSource(offset: number, length: number, what: string): Promise<Buffer> {
    try {
      return await this.source.read(offset, length);
    } catch (err) {
      if (isStrataError(err)) throw err;
      throw new StrataError(Errno.EIO, `xfs: ${what}: ${length} bytes at ${offset} could not be read: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  async metadata(offset: number, length: number, what: string): Promise<MetaBuffer> {
    const key = `${offset}:${length}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const data = Buffer.from(await this.raw(offset, length, what));
    const mb: MetaBuffer = { data, verified: new Set() };
    this.cache.set(key, mb);
    return mb;
  }

  /** Whether log recovery replaced any of bytes [offset, offset+length) in memory. */
  replaced(offset: number, length: number): boolean {
    return this.overlay ? this.overlay.touches(offset, length) : false;
  }

  /** File data: not cached. */
  data(offset: number, length: number, what: string): Promise<Buffer> {
    return this.raw(offset, length, what);
  }
}
