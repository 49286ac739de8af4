import type { DirEntry } from '@strata/protocol';

/**
 * Fetches directory listings ahead of a depth-first walk, a bounded number
 * at a time, so the walk does not pay one cache (or Redis, or store) round
 * trip per directory in sequence. Results wait until taken; at most `window`
 * are running or waiting.
 */
export class ListingPrefetcher {
  private readonly queue: Buffer[] = [];
  private readonly started = new Map<string, Promise<DirEntry[]>>();

  constructor(
    private readonly fetch: (dir: Buffer) => Promise<DirEntry[]>,
    private readonly window = 32,
  ) {}

  /** Directories the walk will want, in the order it will want them. */
  want(dirs: Buffer[]): void {
    this.queue.push(...dirs);
    this.pump();
  }

  take(dir: Buffer): Promise<DirEntry[]> {
    const key = dir.toString('latin1');
    let p = this.started.get(key);
    if (p) this.started.delete(key);
    else p = this.fetch(dir);
    this.pump();
    return p;
  }

  private pump(): void {
    while (this.started.size < this.window && this.queue.length > 0) {
      const dir = this.queue.shift()!;
      const key = dir.toString('latin1');
      if (this.started.has(key)) continue;
      const p = this.fetch(dir);
      // A failure is reported when the walk takes this listing, not before.
      p.catch(() => undefined);
      this.started.set(key, p);
    }
  }
}
