import { LRUCache } from 'lru-cache';
import type { SessionAnswer, SessionPayload } from '@strata/client';
import { Errno, GrpcCode, StrataError, isStrataError } from '@strata/errors';
import { layerRefToProto, type Attr, type DirEntry, type StatFsResponse, type WalkEntry } from '@strata/protocol';
import { injectTraceContext } from '@strata/telemetry';
import { CHUNK_SIZE, type ChunkCache } from './chunk-cache';

/** How long a LIVE layer's answers stay in the agent (the kernel gets the same). */
export const LIVE_TTL_MS = 200;
/** Sequential reads fetch up to this many chunks ahead. */
const MAX_READAHEAD_CHUNKS = 8;
const READDIR_PAGE = 16_384;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

type Cached = { attr: Attr } | { errno: number };

export interface Listing {
  dir: Attr;
  entries: DirEntry[];
}

interface Handle {
  key: string;
  path: Buffer;
  size: number;
  /** Where the previous read ended, to spot sequential readers. */
  lastEnd: number;
  streak: number;
}

/** Where requests go: a SessionGroup in the agent. */
export interface SessionLike {
  request(payload: SessionPayload, traceContext?: Record<string, string>): Promise<SessionAnswer>;
}

/** Attribute lookups answered here / sent on, and file bytes returned; shared by the agent's mounts, read by the metrics. */
export interface MountCounters {
  attrHits: number;
  attrMisses: number;
  bytesRead: number;
}

export interface MountFsOptions {
  session: SessionLike;
  layerId: number;
  live: boolean;
  chunks: ChunkCache;
  /** Unique among the agent's mounts: prefixes this mount's chunk keys. */
  mountKey: string;
  attrEntries: number;
  counters: MountCounters;
}

function keyOf(path: Buffer): string {
  return path.toString('latin1');
}

function isDir(a: Attr): boolean {
  return (a.mode & S_IFMT) === S_IFDIR;
}

function parentKey(key: string): string {
  const i = key.lastIndexOf('/');
  return i <= 0 ? '/' : key.slice(0, i);
}

/** Errors that are facts about the tree (safe to remember), not outages. */
function cacheableErrno(err: unknown): number | undefined {
  if (!isStrataError(err)) return undefined;
  return err.errno === Errno.ENOENT || err.errno === Errno.ENOTDIR || err.errno === Errno.ELOOP ? err.errno : undefined;
}

/**
 * One mount's view of a layer, as the FUSE handlers need it: attributes
 * (primed by readdir and the Walk prefetch), listings, link targets and file
 * data in aligned chunks with sequential readahead. No traversal happens
 * here: every miss is one request on the Session stream.
 */
export class MountFs {
  readonly layerId: number;
  readonly live: boolean;
  private readonly session: SessionLike;
  private readonly chunks: ChunkCache;
  private readonly mountKey: string;
  private readonly ttl: number | undefined;
  private readonly attrs: LRUCache<string, Cached>;
  private readonly listings: LRUCache<string, Listing>;
  private readonly links: LRUCache<string, Buffer>;
  private readonly pendingStats = new Map<string, Promise<Attr>>();
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private readonly layer;
  readonly counters: MountCounters;

  constructor(o: MountFsOptions) {
    this.layerId = o.layerId;
    this.live = o.live;
    this.session = o.session;
    this.chunks = o.chunks;
    this.mountKey = o.mountKey;
    this.counters = o.counters;
    this.ttl = o.live ? LIVE_TTL_MS : undefined;
    this.layer = layerRefToProto({ id: o.layerId });
    const ttl = this.ttl === undefined ? {} : { ttl: this.ttl, ttlAutopurge: false };
    this.attrs = new LRUCache<string, Cached>({ max: Math.max(o.attrEntries, 1000), ...ttl });
    this.listings = new LRUCache<string, Listing>({ maxSize: Math.max(o.attrEntries, 1000), sizeCalculation: (l) => l.entries.length + 1, ...ttl });
    this.links = new LRUCache<string, Buffer>({ max: Math.max(o.attrEntries >> 2, 1000), ...ttl });
  }

  /** One Session request, carrying the trace context of the FUSE operation it serves. */
  private ask(payload: SessionPayload): Promise<SessionAnswer> {
    return this.session.request(payload, injectTraceContext());
  }

  /** A cached answer, if any, without waiting: lets the hot path reply synchronously. */
  cachedStat(path: Buffer): Cached | undefined {
    const hit = this.attrs.get(keyOf(path));
    if (hit) this.counters.attrHits++;
    return hit;
  }

  async stat(path: Buffer): Promise<Attr> {
    const key = keyOf(path);
    const hit = this.attrs.get(key);
    if (hit) {
      this.counters.attrHits++;
      if ('attr' in hit) return hit.attr;
      throw new StrataError(hit.errno, 'cached', { path });
    }
    const running = this.pendingStats.get(key);
    if (running) return running;
    this.counters.attrMisses++;
    const p = this.ask({ $case: 'stat', stat: { layer: this.layer, path } }).then(
      (r) => {
        this.pendingStats.delete(key);
        const attr = r.$case === 'stat' ? r.stat.attr : undefined;
        if (!attr) throw new StrataError(Errno.EIO, 'resolver answered stat without attributes', { code: GrpcCode.INTERNAL });
        this.attrs.set(key, { attr });
        return attr;
      },
      (err: unknown) => {
        this.pendingStats.delete(key);
        const errno = cacheableErrno(err);
        if (errno !== undefined) this.attrs.set(key, { errno });
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
      const r = await this.ask({ $case: 'readDir', readDir: { layer: this.layer, path, offset, limit: READDIR_PAGE } });
      if (r.$case !== 'readDir') throw new StrataError(Errno.EIO, 'resolver answered readdir with something else', { code: GrpcCode.INTERNAL });
      entries.push(...r.readDir.entries);
      dir = r.readDir.dirAttr ?? dir;
      offset += r.readDir.entries.length;
      if (r.readDir.eof || r.readDir.entries.length === 0) break;
    }
    if (!dir) throw new StrataError(Errno.EIO, 'resolver answered readdir without the directory attributes', { code: GrpcCode.INTERNAL });
    const listing = { dir, entries };
    this.remember(key, listing);
    return listing;
  }

  private remember(key: string, listing: Listing): void {
    this.listings.set(key, listing);
    this.attrs.set(key, { attr: listing.dir });
    const prefix = key === '/' ? '/' : `${key}/`;
    for (const e of listing.entries) if (e.attr) this.attrs.set(prefix + e.name.toString('latin1'), { attr: e.attr });
  }

  /** The parent's attributes for "..", from the cache when possible. */
  async parentStat(path: Buffer): Promise<Attr> {
    return this.stat(Buffer.from(parentKey(keyOf(path)), 'latin1'));
  }

  async readlink(path: Buffer): Promise<Buffer> {
    const key = keyOf(path);
    const hit = this.links.get(key);
    if (hit) return hit;
    const r = await this.ask({ $case: 'readLink', readLink: { layer: this.layer, path } });
    if (r.$case !== 'readLink') throw new StrataError(Errno.EIO, 'resolver answered readlink with something else', { code: GrpcCode.INTERNAL });
    this.links.set(key, r.readLink.target);
    return r.readLink.target;
  }

  async listXattr(path: Buffer): Promise<string[]> {
    const r = await this.ask({ $case: 'listXattr', listXattr: { layer: this.layer, path } });
    if (r.$case !== 'listXattr') throw new StrataError(Errno.EIO, 'unexpected answer', { code: GrpcCode.INTERNAL });
    return r.listXattr.names;
  }

  async getXattr(path: Buffer, name: string): Promise<Buffer> {
    const r = await this.ask({ $case: 'getXattr', getXattr: { layer: this.layer, path, name } });
    if (r.$case !== 'getXattr') throw new StrataError(Errno.EIO, 'unexpected answer', { code: GrpcCode.INTERNAL });
    return r.getXattr.value;
  }

  async statfs(): Promise<StatFsResponse> {
    const r = await this.ask({ $case: 'statFs', statFs: { layer: this.layer } });
    if (r.$case !== 'statFs') throw new StrataError(Errno.EIO, 'unexpected answer', { code: GrpcCode.INTERNAL });
    return r.statFs;
  }

  /** Opens a file for reading; the kernel already refused writers (read-only mount). */
  async open(path: Buffer): Promise<number> {
    const attr = await this.stat(path);
    const fh = this.nextHandle++;
    if (this.nextHandle > 0xffffffff) this.nextHandle = 1;
    this.handles.set(fh, { key: keyOf(path), path, size: attr.size, lastEnd: -1, streak: 0 });
    return fh;
  }

  release(fh: number): void {
    this.handles.delete(fh);
  }

  private chunkKey(h: Handle, index: number): string {
    return `${this.mountKey}\0${h.key}\0${index}`;
  }

  private fetchChunk(h: Handle, index: number): () => Promise<Buffer> {
    return async () => {
      const r = await this.ask({ $case: 'read', read: { layer: this.layer, path: h.path, offset: index * CHUNK_SIZE, length: CHUNK_SIZE } });
      if (r.$case !== 'read') throw new StrataError(Errno.EIO, 'resolver answered read with something else', { code: GrpcCode.INTERNAL });
      return r.read.data;
    };
  }

  /**
   * Copies [pos, pos+len) into `into`; returns the byte count (0 at EOF).
   * Sealed files end at the size seen at open; LIVE ones wherever the
   * resolver says.
   */
  async read(fh: number, into: Buffer, pos: number, len: number): Promise<number> {
    const h = this.handles.get(fh);
    if (!h) throw new StrataError(Errno.EBADF, `no open file ${fh}`);
    const end = this.live ? pos + len : Math.min(pos + len, h.size);
    let copied = 0;
    let index = Math.floor(pos / CHUNK_SIZE);
    while (pos + copied < end) {
      const key = this.chunkKey(h, index);
      const chunk = this.chunks.peek(key) ?? (await this.chunks.get(key, this.fetchChunk(h, index), this.ttl));
      const start = index * CHUNK_SIZE;
      const from = pos + copied - start;
      if (from >= chunk.length) break;
      copied += chunk.copy(into, copied, from, Math.min(chunk.length, end - start));
      if (chunk.length < CHUNK_SIZE) break;
      index++;
    }
    this.readahead(h, pos, copied);
    this.counters.bytesRead += copied;
    return copied;
  }

  /** Sequential readers get the next chunks fetched before they ask; the window grows with the streak. */
  private readahead(h: Handle, pos: number, n: number): void {
    h.streak = pos === h.lastEnd || pos === 0 ? h.streak + 1 : 0;
    h.lastEnd = pos + n;
    if (h.streak === 0 || n === 0) return;
    const last = Math.floor((h.size - 1) / CHUNK_SIZE);
    const next = Math.floor((pos + n) / CHUNK_SIZE) + (((pos + n) % CHUNK_SIZE) === 0 ? 0 : 1);
    const window = Math.min(MAX_READAHEAD_CHUNKS, h.streak);
    for (let i = next; i < next + window && (this.live || i <= last); i++) {
      this.chunks.prefetch(this.chunkKey(h, i), this.fetchChunk(h, i), this.ttl);
    }
  }

  /**
   * Fills the caches from a Walk of the whole tree (parents before children,
   * siblings sorted, as the protocol promises). Stops after `limit` entries;
   * a directory's listing is kept only once all of its children were seen.
   */
  async prefetch(walk: AsyncIterable<WalkEntry[]>, limit: number): Promise<{ entries: number; complete: boolean }> {
    const open: { key: string; dir: Attr; entries: DirEntry[] }[] = [];
    const close = (): void => {
      const d = open.pop()!;
      this.remember(d.key, { dir: d.dir, entries: d.entries });
    };
    let count = 0;
    for await (const batch of walk) {
      for (const e of batch) {
        if (++count > limit) return { entries: count - 1, complete: false };
        const attr = e.attr;
        if (!attr) continue;
        const key = keyOf(e.path);
        this.attrs.set(key, { attr });
        if (e.linkTarget.length > 0) this.links.set(key, e.linkTarget);
        if (key !== '/') {
          const parent = parentKey(key);
          while (open.length > 0 && open[open.length - 1].key !== parent) close();
          open[open.length - 1]?.entries.push({ name: Buffer.from(key.slice(key.lastIndexOf('/') + 1), 'latin1'), attr });
        }
        if (isDir(attr)) open.push({ key, dir: attr, entries: [] });
      }
    }
    while (open.length > 0) close();
    return { entries: count, complete: true };
  }

  /** Drops this mount's data chunks (at unmount). */
  dispose(): void {
    this.chunks.drop(`${this.mountKey}\0`);
    this.handles.clear();
  }
}
