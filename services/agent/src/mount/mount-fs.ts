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
/** A read that does not continue the previous one fetches this much, not a whole chunk. */
export const BLOCK_SIZE = 64 * 1024;
/** Files opened one after another in a directory: the next ones' first chunks are fetched ahead. */
const SIBLING_PREFETCH_FILES = 32;
const SIBLING_PREFETCH_BYTES = 16 << 20;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

type Cached = { attr: Attr } | { errno: number };

export interface Listing {
  dir: Attr;
  entries: DirEntry[];
}

/** Data of a file from `start`; shorter than `size` at end of file. */
interface Piece {
  start: number;
  data: Buffer;
  size: number;
}

/** What a data fetch needs to know of a file. */
interface FileRef {
  key: string;
  path: Buffer;
}

/** How a file is being read, to spot sequential readers (kept per path: the agent sees no opens). */
interface ReadState {
  /** Where the previous read ended. */
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

/** Index of `name` in a listing sorted bytewise, or -1. */
function sortedIndexOf(entries: DirEntry[], name: Buffer): number {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = Buffer.compare(entries[mid].name, name);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function parentKey(key: string): string {
  const i = key.lastIndexOf('/');
  return i <= 0 ? '/' : key.slice(0, i);
}

function baseName(key: string): Buffer {
  return Buffer.from(key.slice(key.lastIndexOf('/') + 1), 'latin1');
}

function childKey(dir: string, name: Buffer): string {
  return (dir === '/' ? '/' : `${dir}/`) + name.toString('latin1');
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
  private readonly reading = new LRUCache<string, ReadState>({ max: 4096 });
  /** Per directory: the listing index of the file read last from its start, and how far sibling prefetch has gone. */
  private readonly opened = new LRUCache<string, { last: number; prefetched: number }>({ max: 256 });
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
    for (const e of listing.entries) if (e.attr) this.attrs.set(childKey(key, e.name), { attr: e.attr });
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

  /**
   * Programs that read a tree (cp -r, tar, find | xargs cat, a scanner) read
   * the files of a directory in listing order, one at a time: every file
   * would cost a full round trip. When two files in a directory are read
   * one after the other, the first chunks of the next files are fetched at once, so the
   * round trips overlap. Bounded in files and bytes per step.
   */
  private prefetchSiblings(key: string): void {
    const parent = parentKey(key);
    const listing = this.listings.get(parent);
    if (!listing) return;
    const index = sortedIndexOf(listing.entries, baseName(key));
    if (index < 0) return;
    const seen = this.opened.get(parent);
    this.opened.set(parent, { last: index, prefetched: seen?.prefetched ?? index });
    if (!seen || index <= seen.last || index - seen.last > 16) return;
    let bytes = 0;
    let files = 0;
    let i = Math.max(index, seen.prefetched) + 1;
    for (; i < listing.entries.length && files < SIBLING_PREFETCH_FILES && bytes < SIBLING_PREFETCH_BYTES; i++) {
      const e = listing.entries[i];
      if (!e.attr || (e.attr.mode & S_IFMT) !== S_IFREG || e.attr.size === 0) continue;
      const child = childKey(parent, e.name);
      const ref = { key: child, path: Buffer.from(child, 'latin1') };
      this.chunks.prefetch(this.chunkKey(ref, 0), this.fetchChunk(ref, 0), this.ttl);
      bytes += Math.min(e.attr.size, CHUNK_SIZE);
      files++;
    }
    this.opened.set(parent, { last: index, prefetched: i - 1 });
  }

  private chunkKey(h: FileRef, index: number): string {
    return `${this.mountKey}\0${h.key}\0${index}`;
  }

  private blockKey(h: FileRef, index: number): string {
    return `${this.mountKey}\0${h.key}\0b${index}`;
  }

  private fetch(h: FileRef, offset: number, length: number): () => Promise<Buffer> {
    return async () => {
      const r = await this.ask({ $case: 'read', read: { layer: this.layer, path: h.path, offset, length } });
      if (r.$case !== 'read') throw new StrataError(Errno.EIO, 'resolver answered read with something else', { code: GrpcCode.INTERNAL });
      return r.read.data;
    };
  }

  private fetchChunk(h: FileRef, index: number): () => Promise<Buffer> {
    return this.fetch(h, index * CHUNK_SIZE, CHUNK_SIZE);
  }

  /** A cached piece of a file (a chunk or a block), fetched once if missing; the sync peek spares a tick on hits. */
  private async piece(h: FileRef, key: string, start: number, size: number): Promise<Piece> {
    const data = this.chunks.peek(key) ?? (await this.chunks.get(key, this.fetch(h, start, size), this.ttl));
    return { start, data, size };
  }

  private chunkAt(h: FileRef, pos: number): Promise<Piece> {
    const index = Math.floor(pos / CHUNK_SIZE);
    return this.piece(h, this.chunkKey(h, index), index * CHUNK_SIZE, CHUNK_SIZE);
  }

  /** The piece holding `pos` for a jump: the whole chunk if it is cached, else a block. */
  private blockAt(h: FileRef, pos: number): Promise<Piece> {
    const chunkIndex = Math.floor(pos / CHUNK_SIZE);
    const chunk = this.chunks.peek(this.chunkKey(h, chunkIndex));
    if (chunk) return Promise.resolve({ start: chunkIndex * CHUNK_SIZE, data: chunk, size: CHUNK_SIZE });
    const index = Math.floor(pos / BLOCK_SIZE);
    return this.piece(h, this.blockKey(h, index), index * BLOCK_SIZE, BLOCK_SIZE);
  }

  /**
   * Copies [pos, pos+len) of a file into `into`; returns the byte count (0
   * at EOF). Sealed files end at their known size; LIVE ones wherever the
   * resolver says. The agent implements no open or release (libfuse answers
   * them itself, sparing two trips to this thread per file), so the read
   * pattern is tracked per path.
   */
  async read(path: Buffer, into: Buffer, pos: number, len: number): Promise<number> {
    const attr = await this.stat(path);
    const key = keyOf(path);
    const h = { key, path, size: attr.size };
    let st = this.reading.get(key);
    if (!st) {
      st = { lastEnd: -1, streak: 0 };
      this.reading.set(key, st);
    }
    if (pos === 0 && !this.live) this.prefetchSiblings(key);
    // The kernel sends readahead requests concurrently, a little out of order:
    // a read near where the last ones ended still counts as sequential.
    const sequential = pos === 0 || Math.abs(pos - st.lastEnd) <= 2 * CHUNK_SIZE;
    st.streak = sequential ? st.streak + 1 : 0;
    st.lastEnd = sequential ? Math.max(st.lastEnd, pos + len) : pos + len;
    const end = this.live ? pos + len : Math.min(pos + len, h.size);
    let copied = 0;
    while (pos + copied < end) {
      // Sequential readers move whole chunks; a jump (random access) fetches a small block, not 1 MiB for 4 KiB.
      const piece = sequential ? await this.chunkAt(h, pos + copied) : await this.blockAt(h, pos + copied);
      const from = pos + copied - piece.start;
      if (from >= piece.data.length) break;
      copied += piece.data.copy(into, copied, from, Math.min(piece.data.length, end - piece.start));
      if (piece.data.length < piece.size) break;
    }
    if (sequential && copied > 0) this.readahead(h, st.streak, pos + copied);
    this.counters.bytesRead += copied;
    return copied;
  }

  /** Sequential readers get the next chunks fetched before they ask; the window grows with the streak. */
  private readahead(h: FileRef & { size: number }, streak: number, reached: number): void {
    const last = Math.floor((h.size - 1) / CHUNK_SIZE);
    const next = Math.ceil(reached / CHUNK_SIZE);
    const window = Math.min(MAX_READAHEAD_CHUNKS, streak);
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
          open[open.length - 1]?.entries.push({ name: baseName(key), attr });
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
    this.reading.clear();
  }
}
