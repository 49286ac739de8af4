import { LRUCache } from 'lru-cache';
import { corrupt, unreadable } from './corruption';
import type { ByteSource } from './types';

/** A cached metadata block, with the checks already passed on it (like the kernel's buffer_verified). */
export interface MetadataBlock {
  readonly block: number;
  readonly data: Buffer;
  readonly verified: Set<string>;
}

/** Blocks whose content is not the image's own (a journal replay): sorted numbers, and each one's content. */
export interface BlockOverlay {
  readonly blocks: readonly number[];
  has(block: number): boolean;
  read(block: number): Promise<Buffer>;
}

/** Largest single read handed to the source, so a huge file read never asks for one giant buffer at once. */
const MAX_SOURCE_READ = 8 * 1024 * 1024;
/** Most metadata blocks one miss reads (blocks after it that a caller said are worth reading). */
export const MAX_AHEAD_BLOCKS = 8;
/** Widest aligned window a miss may be read around (blocks). */
export const MAX_AROUND_BLOCKS = 16;

/**
 * The one way blocks are read. Metadata blocks are cached; data runs are
 * read straight through, one source read per contiguous run. A journal
 * replay sits here as an overlay: the blocks it replaces are read from it,
 * runs are split around them, and nothing above this module needs to know.
 */
export class BlockReader {
  private readonly cache: LRUCache<number, MetadataBlock>;

  constructor(
    private readonly source: ByteSource,
    readonly blockSize: number,
    readonly blockCount: number,
    cacheBytes: number,
    private readonly overlay?: BlockOverlay,
  ) {
    this.cache = new LRUCache<number, MetadataBlock>({
      maxSize: Math.max(cacheBytes, blockSize),
      sizeCalculation: () => blockSize + 64,
    });
  }

  private check(start: number, count: number, what: string): void {
    if (!Number.isSafeInteger(start) || start < 0 || count < 0 || start + count > this.blockCount) {
      throw corrupt(what, `block ${start}${count > 1 ? `+${count}` : ''} is past the end of the filesystem (${this.blockCount} blocks)`);
    }
  }

  private async readRaw(start: number, count: number, what: string): Promise<Buffer> {
    const length = count * this.blockSize;
    const offset = start * this.blockSize;
    const parts: Buffer[] = [];
    for (let done = 0; done < length; ) {
      const n = Math.min(MAX_SOURCE_READ, length - done);
      const buf = await this.source.read(offset + done, n);
      if (buf.length < n) throw unreadable(what, `short read at byte ${offset + done} (image truncated?)`);
      parts.push(buf.length === n ? buf : buf.subarray(0, n));
      done += n;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, length);
  }

  /** Index of the first overlay block >= start. */
  private firstOverlaid(start: number): number {
    const blocks = this.overlay?.blocks ?? [];
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (blocks[mid] < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Blocks [start, start+count) as this reader sees them: image runs between the overlay's blocks. */
  private async readBlocks(start: number, count: number, what: string): Promise<Buffer> {
    const blocks = this.overlay?.blocks ?? [];
    let i = this.firstOverlaid(start);
    if (!this.overlay || i >= blocks.length || blocks[i] >= start + count) return this.readRaw(start, count, what);
    const bs = this.blockSize;
    const out = Buffer.alloc(count * bs);
    let at = start;
    while (at < start + count) {
      if (i < blocks.length && blocks[i] === at) {
        const data = await this.overlay.read(at);
        if (data.length !== bs) throw corrupt(what, `replayed block ${at} has ${data.length} bytes`);
        data.copy(out, (at - start) * bs);
        at++;
        i++;
        continue;
      }
      const end = i < blocks.length && blocks[i] < start + count ? blocks[i] : start + count;
      (await this.readRaw(at, end - at, what)).copy(out, (at - start) * bs);
      at = end;
    }
    return out;
  }

  /** Metadata blocks being read: concurrent misses of one block (a listing's inodes, sibling files) share one source read. */
  private readonly loading = new Map<number, Promise<MetadataBlock>>();

  /** Source reads of metadata blocks (misses that were not already being read). */
  metadataReads = 0;

  /**
   * One metadata block, from the cache when possible. `aheadTo` (exclusive)
   * lets a miss read the blocks after it in the same source read, up to
   * MAX_AHEAD_BLOCKS and the first block already cached or being read (as
   * the kernel reads inode tables ahead): a directory's inodes then cost one
   * read instead of one per block. `around` (a power of two up to
   * MAX_AROUND_BLOCKS) widens a miss to the aligned window of that many
   * blocks holding it, minus blocks cached or being read, as the page cache
   * of a block device reads around a miss.
   */
  metadata(block: number, what: string, aheadTo = block + 1, around = 1): Promise<MetadataBlock> {
    const hit = this.cache.get(block);
    if (hit) return Promise.resolve(hit);
    const pending = this.loading.get(block);
    if (pending) return pending;
    try {
      this.check(block, 1, what);
    } catch (err) {
      return Promise.reject(err);
    }
    const free = (b: number): boolean => !this.cache.has(b) && !this.loading.has(b);
    const win = around > 1 ? Math.min(2 ** Math.floor(Math.log2(around)), MAX_AROUND_BLOCKS) : 1;
    const windowStart = block - (block % win);
    let start = block;
    while (start > windowStart && free(start - 1)) start--;
    let end = block + 1;
    const limit = Math.min(Math.max(aheadTo, windowStart + win), block + Math.max(MAX_AHEAD_BLOCKS, win), this.blockCount);
    while (end < limit && free(end)) end++;
    const count = end - start;
    // The check passed, so the first await comes before `finally`: the entries are set before they are deleted.
    const run = (async (): Promise<(MetadataBlock | { failed: unknown })[]> => {
      const keep = (k: number, data: Buffer): MetadataBlock => {
        const mb: MetadataBlock = { block: start + k, data, verified: new Set() };
        this.cache.set(start + k, mb);
        return mb;
      };
      try {
        this.metadataReads++;
        let raw: Buffer | undefined;
        try {
          raw = await this.readBlocks(start, count, what);
        } catch (err) {
          if (count === 1) throw err;
        }
        if (raw) {
          const whole = raw;
          // Copied when several were read, so a cached block does not pin the whole run's buffer.
          return Array.from({ length: count }, (_, k) => keep(k, count === 1 ? whole : Buffer.from(whole.subarray(k * this.blockSize, (k + 1) * this.blockSize))));
        }
        // The run failed (a bad sector somewhere in it): each block on its own, so only the bad one fails.
        return await Promise.all(
          Array.from({ length: count }, async (_, k) => {
            try {
              this.metadataReads++;
              return keep(k, await this.readBlocks(start + k, 1, what));
            } catch (failed) {
              return { failed };
            }
          }),
        );
      } finally {
        for (let k = 0; k < count; k++) this.loading.delete(start + k);
      }
    })();
    for (let k = 0; k < count; k++) {
      const one = run.then((blocks) => {
        const b = blocks[k];
        if ('failed' in b) throw b.failed;
        return b;
      });
      // Blocks read around that nobody asks for must not report an unhandled rejection.
      if (start + k !== block) one.catch(() => undefined);
      this.loading.set(start + k, one);
    }
    return this.loading.get(block) as Promise<MetadataBlock>;
  }

  /** Consecutive metadata blocks; the ones not cached are fetched with as few source reads as possible. */
  async metadataRun(start: number, count: number, what: string): Promise<MetadataBlock[]> {
    this.check(start, count, what);
    const out: (MetadataBlock | undefined)[] = [];
    for (let i = 0; i < count; i++) out.push(this.cache.get(start + i));
    for (let i = 0; i < count; ) {
      if (out[i]) {
        i++;
        continue;
      }
      let j = i;
      while (j < count && !out[j]) j++;
      const raw = await this.readBlocks(start + i, j - i, what);
      for (let k = i; k < j; k++) {
        // Copy so a cached block does not pin the whole run's buffer.
        const data = Buffer.from(raw.subarray((k - i) * this.blockSize, (k - i + 1) * this.blockSize));
        const mb: MetadataBlock = { block: start + k, data, verified: new Set() };
        this.cache.set(start + k, mb);
        out[k] = mb;
      }
      i = j;
    }
    return out.map((mb, i) => {
      if (!mb) throw corrupt(what, `block ${start + i} was not read`);
      return mb;
    });
  }

  /** File data: not cached, one source read per contiguous run. */
  async data(start: number, count: number, what: string): Promise<Buffer> {
    this.check(start, count, what);
    return this.readBlocks(start, count, what);
  }

  /**
   * File data into the caller's buffer: bytes [skip, skip+length) of blocks
   * [start, start+count) go to target[targetOffset...]. Straight from the
   * source into target (one source read per piece of up to 8 MiB, no
   * buffer of our own, no copy) when the source reads into buffers and no
   * replayed block lies in the run; otherwise through data() and a copy.
   */
  async dataInto(target: Buffer, targetOffset: number, start: number, count: number, skip: number, length: number, what: string): Promise<void> {
    this.check(start, count, what);
    const bs = this.blockSize;
    if (skip < 0 || length < 0 || skip + length > count * bs || targetOffset < 0 || targetOffset + length > target.length) {
      throw corrupt(what, `bytes ${skip}+${length} of blocks ${start}+${count} do not fit the read`);
    }
    if (length === 0) return;
    const i = this.firstOverlaid(start);
    const overlaid = this.overlay !== undefined && i < this.overlay.blocks.length && this.overlay.blocks[i] < start + count;
    const into = this.source.readInto?.bind(this.source);
    if (overlaid || !into) {
      const data = await this.readBlocks(start, count, what);
      data.copy(target, targetOffset, skip, skip + length);
      return;
    }
    const offset = start * bs + skip;
    for (let done = 0; done < length; ) {
      const n = Math.min(MAX_SOURCE_READ, length - done);
      await into(target, targetOffset + done, offset + done, n);
      done += n;
    }
  }
}
