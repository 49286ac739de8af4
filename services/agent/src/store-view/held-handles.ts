/**
 * Handles opened once per key and shared by every user: kept open up to a
 * bound (least recently used closed first, never one in use), a failed
 * open not kept (its waiters get its error, the next use opens again), a
 * forgotten or evicted handle closed once its last user is done. The
 * store view holds its store files and the directories they are opened
 * from this way.
 */
interface Held<T> {
  opening: Promise<T>;
  users: number;
  /** Out of the set: closed when its last user is done. */
  dropped: boolean;
}

export class HeldHandles<T> {
  private readonly held = new Map<string, Held<T>>();

  constructor(
    private readonly max: number,
    private readonly open: (key: string) => Promise<T>,
    private readonly close: (handle: T) => Promise<void>,
  ) {}

  /** Runs `fn` with key's handle, opened now or shared with other users. */
  async use<R>(key: string, fn: (handle: T) => Promise<R>): Promise<R> {
    const h = this.acquire(key);
    try {
      return await fn(await h.opening);
    } finally {
      h.users--;
      if (h.dropped && h.users === 0) void this.shut(h);
    }
  }

  /** Drops key's handle (the next use opens it again). */
  forget(key: string): void {
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    this.drop(h);
  }

  /** Handles held now. */
  get size(): number {
    return this.held.size;
  }

  async closeAll(): Promise<void> {
    const all = [...this.held.values()];
    this.held.clear();
    for (const h of all) h.dropped = true;
    await Promise.all(all.filter((h) => h.users === 0).map((h) => this.shut(h)));
  }

  private acquire(key: string): Held<T> {
    const h = this.held.get(key);
    if (h) {
      // Most recently used last.
      this.held.delete(key);
      this.held.set(key, h);
      h.users++;
      return h;
    }
    const mine: Held<T> = { opening: this.open(key), users: 1, dropped: false };
    this.held.set(key, mine);
    mine.opening.catch(() => {
      if (this.held.get(key) === mine) this.held.delete(key);
      mine.dropped = true;
    });
    this.trim();
    return mine;
  }

  private trim(): void {
    for (const [key, h] of this.held) {
      if (this.held.size <= this.max) return;
      if (h.users > 0) continue;
      this.held.delete(key);
      this.drop(h);
    }
  }

  private drop(h: Held<T>): void {
    h.dropped = true;
    if (h.users === 0) void this.shut(h);
  }

  private async shut(h: Held<T>): Promise<void> {
    const handle = await h.opening.catch(() => undefined);
    if (handle !== undefined) await this.close(handle).catch(() => undefined);
  }
}
