import { promises as fs, constants as fsc } from 'node:fs';
import { LRUCache } from 'lru-cache';

interface Entry {
  handle: Promise<fs.FileHandle>;
  refs: number;
  evicted: boolean;
}

export interface OpenFile {
  handle: fs.FileHandle;
  release(): void;
}

/**
 * Open file handles of sealed layers, reused across reads: a stream of 4 KiB
 * reads must not pay open+close each. A handle evicted while a read still
 * uses it is closed when that read releases it.
 */
export class FdCache {
  private readonly lru: LRUCache<string, Entry>;

  constructor(max = 1024) {
    this.lru = new LRUCache<string, Entry>({
      max,
      dispose: (entry) => {
        entry.evicted = true;
        if (entry.refs === 0) closeQuietly(entry.handle);
      },
    });
  }

  async acquire(real: Buffer): Promise<OpenFile> {
    const key = real.toString('latin1');
    let entry = this.lru.get(key);
    if (!entry) {
      // O_NOFOLLOW: the cached record said "regular file"; never follow a symlink put there since.
      entry = { handle: fs.open(real, fsc.O_RDONLY | fsc.O_NOFOLLOW), refs: 0, evicted: false };
      this.lru.set(key, entry);
      entry.handle.catch(() => this.lru.delete(key));
    }
    entry.refs++;
    const e = entry;
    try {
      const handle = await e.handle;
      let released = false;
      return {
        handle,
        release: () => {
          if (released) return;
          released = true;
          if (--e.refs === 0 && e.evicted) closeQuietly(e.handle);
        },
      };
    } catch (err) {
      e.refs--;
      throw err;
    }
  }

  clear(): void {
    this.lru.clear();
  }
}

function closeQuietly(handle: Promise<fs.FileHandle>): void {
  handle.then((h) => h.close()).catch(() => undefined);
}
