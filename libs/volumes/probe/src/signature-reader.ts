import type { ByteSource } from './byte-source';

/** Probers read little; nothing they ask for is larger (a FAT root directory, a ZFS label's uberblocks). */
export const MAX_PROBE_READ = 4 * 1024 * 1024;
const MAX_CACHED = 64;

/**
 * Reads for signature probers: a range outside the source (or larger than a
 * prober may ask) is undefined — no signature there — rather than an error;
 * repeated ranges are read once.
 */
export class SignatureReader {
  private readonly cache = new Map<string, Promise<Buffer>>();

  constructor(private readonly source: ByteSource) {}

  get size(): number {
    return this.source.size;
  }

  async at(offset: number, length: number): Promise<Buffer | undefined> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) return undefined;
    if (length > MAX_PROBE_READ || offset + length > this.source.size) return undefined;
    const key = `${offset}:${length}`;
    let p = this.cache.get(key);
    if (!p) {
      if (this.cache.size >= MAX_CACHED) this.cache.clear();
      p = this.source.read(offset, length);
      this.cache.set(key, p);
    }
    return p;
  }
}
