import { close, constants as fsc, open } from 'node:fs';
import { LRUCache } from 'lru-cache';

interface Entry {
  fd: Promise<number>;
  refs: number;
  evicted: boolean;
}

export interface OpenFile {
  fd: number;
  release(): void;
}

/** Opens a store file for reading, never through a symlink. */
export function openNoFollow(real: Buffer): Promise<number> {
  // Plain descriptors through the callback API: a FileHandle costs about as much again per file in the
  // process's CPU (its object, promise plumbing, close) as the open itself, and a cold read of many
  // small files opens one per file.
  return new Promise((resolve, reject) => open(real, fsc.O_RDONLY | fsc.O_NOFOLLOW, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function closeQuietly(fd: number): void {
  close(fd, () => undefined);
}

/**
 * Open files of sealed layers, reused across reads: a stream of 4 KiB
 * reads must not pay open+close each. A descriptor evicted while a read
 * still uses it is closed when that read releases it.
 */
export class FdCache {
  private readonly lru: LRUCache<string, Entry>;

  constructor(max = 1024) {
    this.lru = new LRUCache<string, Entry>({
      max,
      dispose: (entry) => {
        entry.evicted = true;
        if (entry.refs === 0) closeLater(entry.fd);
      },
    });
  }

  async acquire(real: Buffer): Promise<OpenFile> {
    const key = real.toString('latin1');
    let entry = this.lru.get(key);
    if (!entry) {
      // O_NOFOLLOW: the cached record said "regular file"; never follow a symlink put there since.
      entry = { fd: openNoFollow(real), refs: 0, evicted: false };
      this.lru.set(key, entry);
      entry.fd.catch(() => this.lru.delete(key));
    }
    entry.refs++;
    const e = entry;
    try {
      const fd = await e.fd;
      let released = false;
      return {
        fd,
        release: () => {
          if (released) return;
          released = true;
          if (--e.refs === 0 && e.evicted) closeQuietly(fd);
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

/** Closes a descriptor once its open is done (a failed open has nothing to close). */
function closeLater(fd: Promise<number>): void {
  fd.then(closeQuietly, () => undefined);
}
