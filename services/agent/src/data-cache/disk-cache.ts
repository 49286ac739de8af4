import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LRUCache } from 'lru-cache';
import { StrataError } from '@strata/errors';

/** One layer file held whole on disk, or on its way there. */
export interface CachedFile {
  /** Where its bytes are (the file exists from the start of the fill). */
  readonly file: string;
  readonly size: number;
  ready: boolean;
  /** Stops a fill still running, tells the mount its file data is gone. */
  readonly gone: AbortController;
}

export interface DiskCacheStats {
  files: number;
  bytes: number;
  fills: number;
  fillBytes: number;
  fillFailures: number;
  evictions: number;
  diskReads: number;
}

/** Files whose bytes are not worth a file of their own, and bounds on one file against the whole. */
const MIN_FILE_BYTES = 1;
const MAX_SHARE = 4;

/**
 * The agent's on-disk data cache: sealed layer files kept whole, one cache
 * file each, shared by every mount and evicted by size (least recently
 * filled or read first). A mount hands the kernel these files for FUSE
 * passthrough, so reads of them never reach the agent; eviction therefore
 * only stops new opens from using a file, the kernel keeps what open files
 * still hold. The directory is the agent's alone: it is emptied at start,
 * since what a previous agent left says nothing about today's layers.
 */
export class DiskCache {
  private readonly lru: LRUCache<string, CachedFile>;
  private seq = 0;
  private readonly counters = { fills: 0, fillBytes: 0, fillFailures: 0, evictions: 0, diskReads: 0 };

  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {
    this.lru = new LRUCache<string, CachedFile>({
      maxSize: Math.max(maxBytes, 1),
      sizeCalculation: (f) => Math.max(f.size, 1),
      dispose: (f, _key, reason) => {
        if (reason === 'evict') this.counters.evictions++;
        f.gone.abort();
        void fs.rm(f.file, { force: true });
      },
    });
  }

  /** No cache: every read goes through the agent. */
  static none(): DiskCache {
    return new DiskCache('', 0);
  }

  /** The cache in `dir` (created 0700, emptied). */
  static async open(dir: string, maxBytes: number): Promise<DiskCache> {
    await fs.rm(dir, { recursive: true, force: true }).catch((err: unknown) => {
      throw StrataError.from(err, `clearing the data cache ${dir}`);
    });
    await fs.mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      throw StrataError.from(err, `creating the data cache ${dir}`);
    });
    return new DiskCache(dir, maxBytes);
  }

  /** Whether a file of this size is kept whole: not empty, and at most a quarter of the cache. */
  takes(size: number): boolean {
    return this.maxBytes > 0 && size >= MIN_FILE_BYTES && size <= this.maxBytes / MAX_SHARE;
  }

  /**
   * Room for a file about to be filled, under `id` (unique per mount and
   * node). Making room may evict other files at once.
   */
  reserve(id: string, size: number): CachedFile {
    const f: CachedFile = { file: path.join(this.dir, `${++this.seq}`), size, ready: false, gone: new AbortController() };
    this.lru.set(id, f);
    this.counters.fills++;
    return f;
  }

  /** The file under `id` if it is still cached (and marks it used). */
  get(id: string): CachedFile | undefined {
    return this.lru.get(id);
  }

  filled(f: CachedFile): void {
    f.ready = true;
    this.counters.fillBytes += f.size;
  }

  /** A fill that failed: its room is given back. */
  failed(id: string, f: CachedFile): void {
    this.counters.fillFailures++;
    if (this.lru.peek(id) === f) this.lru.delete(id);
  }

  diskRead(): void {
    this.counters.diskReads++;
  }

  /** Every file whose id starts with `prefix` (a mount going away). */
  drop(prefix: string): void {
    for (const k of [...this.lru.keys()]) if (k.startsWith(prefix)) this.lru.delete(k);
  }

  /** At agent stop, after every mount is gone: the files and the directory go. */
  async close(): Promise<void> {
    this.lru.clear();
    if (this.dir !== '') await fs.rm(this.dir, { recursive: true, force: true });
  }

  stats(): DiskCacheStats {
    return { files: this.lru.size, bytes: this.lru.calculatedSize, ...this.counters };
  }
}
