import { StrataError } from '@strata/errors';
import { LIVE_FRESHNESS } from '@strata/layers';
import { isDirMode } from '@strata/posix';
import { layerRefToProto, type Attr, type DirEntry, type StatFsResponse, type WalkEntry } from '@strata/protocol';
import { AttrCache, type CachedAttr } from './attr-cache';
import type { ChunkCache } from './chunk-cache';
import type { Clock } from './expiry';
import { FileData } from './file-data';
import { LinkCache } from './link-cache';
import { ListingCache, type Listing } from './listing-cache';
import { ReadPolicy } from './read-policy';
import { operationsOver, type Ask, type SessionRequester } from '@strata/client';
import { injectTraceContext } from '@strata/telemetry';
import { baseName, childKey, keyOf, parentKey, pathOf } from './tree-path';
import type { StoreView } from '../store-view';

const READDIR_PAGE = 16_384;

/**
 * The prefetch Walk is taken in this many entries at a time, with a turn of
 * the event loop between: a batch of the resolver's (512 entries, several
 * milliseconds of the agent's time) was one task, and a READ arriving then
 * waited for all of it.
 */
export const PREFETCH_SLICE = 64;
/**
 * While READs wait for file bytes, the prefetch waits for them to be
 * answered, at most this long per slice. Right after a mount, the walk and
 * a reader's first reads share the resolver and the agent: a cold random
 * reader's first reads took 10-80 ms each while the walk was taken in
 * (issue 28). Bounded, so a mount read without pause still gets its walk
 * (at least a slice per this long).
 */
export const PREFETCH_GIVE_WAY_MS = 20;

/** Told of what a prefetch learnt, complete directories and link targets, so a kernel-side cache can hold them too. */
export interface PrefetchSink {
  /** `parentIno`: st_ino of "..", the directory's own for the root; `keys`: each entry's key (childKey), in order, when known. */
  directory(key: string, listing: Listing, parentIno: number, keys?: readonly string[]): void;
  link(key: string, target: Buffer): void;
  /** What was told so far is to be passed on now (before each turn of the event loop the prefetch gives, and at its end). */
  flush?(): void;
}

/** Attribute lookups answered here / sent on, and file bytes returned; shared by the agent's mounts, read by the metrics. */
export interface MountCounters {
  attrHits: number;
  attrMisses: number;
  bytesRead: number;
}

export interface MountFsOptions {
  session: SessionRequester;
  layerId: number;
  live: boolean;
  chunks: ChunkCache;
  /** Unique among the agent's mounts: prefixes this mount's chunk keys. */
  mountKey: string;
  attrEntries: number;
  counters: MountCounters;
  /** Measures how long LIVE answers are kept (the chunk cache has its own); tests move one by hand. */
  clock?: Clock;
  /** --store-view: a sealed layer's file data read from the store by extent maps (FileData decides; LIVE never). */
  storeView?: StoreView;
}

/**
 * One mount's view of a layer, as the FUSE handlers need it: attributes
 * (primed by readdir and the Walk prefetch), listings, link targets and file
 * data, read the way the read policy decides. No traversal happens here:
 * every miss is one request on the Session stream.
 */
export class MountFs {
  private readonly counters: MountCounters;
  private readonly ask: Ask;
  private readonly layer;
  private readonly attrs: AttrCache;
  private readonly listings: ListingCache;
  private readonly links: LinkCache;
  private readonly data: FileData;
  private readonly policy: ReadPolicy;
  private readonly pendingStats = new Map<string, Promise<Attr>>();
  /** READs waiting for file bytes now, and who waits for there to be none (the prefetch). */
  private reading = 0;
  private readsDone: Array<() => void> = [];

  constructor(o: MountFsOptions) {
    // Each request carries the trace context of the FUSE operation it serves.
    this.ask = operationsOver(o.session, injectTraceContext);
    this.counters = o.counters;
    this.layer = layerRefToProto({ id: o.layerId });
    // The agent's part of the one-second LIVE budget (@strata/layers LIVE_FRESHNESS): attributes,
    // listings, links and data chunks of a LIVE layer are asked again once they are this old.
    const ttlMs = o.live ? LIVE_FRESHNESS.agentCacheMs : undefined;
    const kept = { entries: o.attrEntries, ttlMs, clock: o.clock };
    this.attrs = new AttrCache(kept);
    this.listings = new ListingCache(kept);
    this.links = new LinkCache(kept);
    this.data = new FileData({ ask: this.ask, layer: this.layer, chunks: o.chunks, mountKey: o.mountKey, ttlMs, ...(o.storeView ? { storeView: o.storeView } : {}) });
    this.policy = new ReadPolicy(o.live, (dir) => this.listings.get(dir)?.entries);
  }

  /** A cached answer, if any, without waiting: lets the hot path reply synchronously. */
  cachedStat(path: Buffer): CachedAttr | undefined {
    const hit = this.attrs.get(keyOf(path));
    if (hit) this.counters.attrHits++;
    return hit;
  }

  async stat(path: Buffer, key = keyOf(path)): Promise<Attr> {
    return this.knownAttr(key, path) ?? this.fetchStat(key, path);
  }

  /** A cached answer as stat gives it (a cached failure thrown), undefined when nothing is cached: no tick spent on hits. */
  private knownAttr(key: string, path: Buffer): Attr | undefined {
    const hit = this.attrs.get(key);
    if (!hit) return undefined;
    this.counters.attrHits++;
    if ('attr' in hit) return hit.attr;
    throw new StrataError(hit.errno, 'cached', { path });
  }

  private fetchStat(key: string, path: Buffer): Promise<Attr> {
    const running = this.pendingStats.get(key);
    if (running) return running;
    this.counters.attrMisses++;
    const p = this.ask('stat', { layer: this.layer, path }).then(
      (r) => {
        this.pendingStats.delete(key);
        const attr = r.attr;
        if (!attr) throw StrataError.io('resolver answered stat without attributes');
        this.attrs.set(key, attr);
        return attr;
      },
      (err: unknown) => {
        this.pendingStats.delete(key);
        this.attrs.failed(key, err);
        throw err;
      },
    );
    this.pendingStats.set(key, p);
    return p;
  }

  /** The whole directory, every entry with its attributes; primes the attribute cache. */
  async readdir(path: Buffer): Promise<Listing> {
    const key = keyOf(path);
    const hit = this.listings.get(key);
    if (hit) return hit;
    const entries: DirEntry[] = [];
    let dir: Attr | undefined;
    for (let offset = 0; ; ) {
      const r = await this.ask('readDir', { layer: this.layer, path, offset, limit: READDIR_PAGE });
      entries.push(...r.entries);
      dir = r.dirAttr ?? dir;
      offset += r.entries.length;
      if (r.eof || r.entries.length === 0) break;
    }
    if (!dir) throw StrataError.io('resolver answered readdir without the directory attributes');
    const listing = { dir, entries };
    this.remember(key, listing);
    return listing;
  }

  private remember(key: string, listing: Listing): void {
    this.listings.set(key, listing);
    this.attrs.set(key, listing.dir);
    for (const e of listing.entries) if (e.attr) this.attrs.set(childKey(key, e.name), e.attr);
  }

  /** The parent's attributes for "..", from the cache when possible. */
  async parentStat(path: Buffer): Promise<Attr> {
    return this.stat(pathOf(parentKey(keyOf(path))));
  }

  async readlink(path: Buffer): Promise<Buffer> {
    const key = keyOf(path);
    const hit = this.links.get(key);
    if (hit) return hit;
    const { target } = await this.ask('readLink', { layer: this.layer, path });
    this.links.set(key, target);
    return target;
  }

  async listXattr(path: Buffer): Promise<string[]> {
    return (await this.ask('listXattr', { layer: this.layer, path })).names;
  }

  async getXattr(path: Buffer, name: string): Promise<Buffer> {
    return (await this.ask('getXattr', { layer: this.layer, path, name })).value;
  }

  async statfs(): Promise<StatFsResponse> {
    return this.ask('statFs', { layer: this.layer });
  }

  /**
   * Copies [pos, pos+len) of a file into `into`; returns the byte count (0
   * at EOF). The agent implements no open or release (libfuse answers them
   * itself, sparing two trips to this thread per file), so the read policy
   * tracks the read pattern per path.
   */
  async read(path: Buffer, into: Buffer, pos: number, len: number): Promise<number> {
    const data = await this.readView(path, pos, len);
    return data.copy(into, 0);
  }

  /** [pos, pos+len) of a file (empty at EOF), as a view of cached data where it can be: nothing allocated per read. */
  async readView(path: Buffer, pos: number, len: number): Promise<Buffer> {
    return (await this.readSized(path, pos, len)).data;
  }

  /** readView, with the file's size its attributes gave (`key`: keyOf(path), when the caller has it). */
  async readSized(path: Buffer, pos: number, len: number, key = keyOf(path)): Promise<{ data: Buffer; size: number }> {
    // Cached attributes are taken without a tick: a small file costs one read, and every await is CPU.
    const attr = this.knownAttr(key, path) ?? (await this.fetchStat(key, path));
    const h = { key, path };
    const plan = this.policy.plan(key, pos, len, attr.size);
    for (const sibling of plan.siblings) this.data.prefetchChunk({ key: sibling, path: pathOf(sibling) }, 0);
    let data: Buffer;
    this.reading++;
    try {
      data = await this.data.view(h, pos, plan.end, plan.unit);
    } finally {
      if (--this.reading === 0) this.wakeGivenWay();
    }
    for (const index of this.policy.ahead(plan, data.length)) this.data.prefetchChunk(h, index);
    this.counters.bytesRead += data.length;
    return { data, size: attr.size };
  }

  private wakeGivenWay(): void {
    const waiting = this.readsDone;
    this.readsDone = [];
    for (const go of waiting) go();
  }

  /** A turn of the event loop, then, while READs wait for file bytes, until they are answered or PREFETCH_GIVE_WAY_MS passed. */
  private async giveWay(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.reading === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, PREFETCH_GIVE_WAY_MS);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.readsDone.push(done);
    });
  }

  /** Told of every chunk fetched from a resolver, by file key (keyOf of its path). */
  tapChunks(tap: (key: string, index: number, data: Buffer) => void): void {
    this.data.tapChunks(tap);
  }

  /** Chunk `index` of a file (the on-disk data cache fills from these, sharing fetches with readers). */
  chunk(path: Buffer, index: number): Promise<Buffer> {
    return this.data.chunk({ key: keyOf(path), path }, index);
  }

  /**
   * Fills the caches from a Walk of the whole tree (parents before children,
   * siblings sorted, as the protocol promises). Stops after `limit` entries;
   * a directory's listing is kept only once all of its children were seen.
   * Taken in PREFETCH_SLICE entries at a time, giving way to READs between.
   */
  async prefetch(walk: AsyncIterable<WalkEntry[]>, limit: number, sink?: PrefetchSink): Promise<{ entries: number; complete: boolean }> {
    const open: { key: string; dir: Attr; entries: DirEntry[]; keys: string[] }[] = [];
    const close = (): void => {
      const d = open.pop()!;
      const listing = { dir: d.dir, entries: d.entries };
      // The attributes of the directory and of its entries were kept as the Walk named them.
      this.listings.set(d.key, listing);
      // Parents come before their children in a Walk, so the parent's attributes are known here.
      const parent = d.key === '/' ? undefined : this.attrs.get(parentKey(d.key));
      sink?.directory(d.key, listing, parent && 'attr' in parent ? parent.attr.ino : d.dir.ino, d.keys);
    };
    let count = 0;
    for await (const batch of walk) {
      for (const e of batch) {
        if (++count > limit) {
          sink?.flush?.();
          return { entries: count - 1, complete: false };
        }
        if (count % PREFETCH_SLICE === 0) {
          sink?.flush?.();
          await this.giveWay();
        }
        const attr = e.attr;
        const key = keyOf(e.path);
        if (!attr) {
          // A damaged object: named in its parent's listing (a lookup of it then fails), never cached as attributes.
          if (e.error && key !== '/') {
            const parent = parentKey(key);
            while (open.length > 0 && open[open.length - 1].key !== parent) close();
            const into = open[open.length - 1];
            const name = baseName(key);
            into?.entries.push({ name, attr: undefined, error: e.error });
            into?.keys.push(childKey(parent, name));
          }
          continue;
        }
        this.attrs.set(key, attr);
        if (e.linkTarget.length > 0) {
          this.links.set(key, e.linkTarget);
          sink?.link(key, e.linkTarget);
        }
        if (key !== '/') {
          const parent = parentKey(key);
          while (open.length > 0 && open[open.length - 1].key !== parent) close();
          const into = open[open.length - 1];
          if (into) {
            const slash = key.lastIndexOf('/');
            // The name as a view of the path's last component, not a copy: it keeps the (pooled) bytes of the path alive, a few dozen bytes more per entry.
            const name = e.path.subarray(slash + 1);
            into.entries.push({ name, attr });
            // The key a lookup of the name makes (childKey): the path itself unless it is not in canonical form ("//a", "a").
            into.keys.push(slash === 0 || slash > 1 ? key : childKey(parent, name));
          }
        }
        if (isDirMode(attr.mode)) open.push({ key, dir: attr, entries: [], keys: [] });
      }
      // Before waiting for the Walk's next message.
      sink?.flush?.();
    }
    while (open.length > 0) close();
    sink?.flush?.();
    return { entries: count, complete: true };
  }

  /** Drops this mount's data chunks and read patterns (at unmount). */
  dispose(): void {
    this.data.dispose();
    this.policy.clear();
  }
}
