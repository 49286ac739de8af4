import { promises as fs, constants as fsc } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { Errno, GrpcCode, StrataError, errnoName, fromSystemError, isStrataError } from '@strata/errors';
import { type CacheTier, type MetadataCache, recordKey } from '@strata/cache';
import type { LayerRef } from '@strata/layers';
import {
  Attr,
  DirEntry,
  GetXattrResponse,
  ListXattrResponse,
  ListingRecord,
  NodeRecord,
  ReadDirResponse,
  ReadLinkResponse,
  ReadResponse,
  StatFsResponse,
  StatResponse,
  XattrRecord,
} from '@strata/protocol';
import { type Change, type Node, type WalkEntry, diff, joinPath, printable, attrOf, readAt, splitPath } from '@strata/traversal';
import { inSpan } from '@strata/telemetry';
import type { ChainView, Chains } from './chains';
import { FdCache } from './fd-cache';
import { ListingPrefetcher } from './listing-prefetcher';

/** Largest read answered in one Session message (a short read, as read(2) may return). */
export const SESSION_READ_MAX = 1 << 20;
/** Chunk size of the unary Read stream. */
export const READ_CHUNK = 1 << 20;
export const READDIR_DEFAULT_LIMIT = 1024;
export const READDIR_MAX_LIMIT = 16384;
const WALK_BATCH = 512;

/** Store work is traced only as part of a request's trace. */
const STORE_SPAN = { childOnly: true };

/** Lookup failures that depend only on the (sealed) tree, so they are cached like answers. */
const NEGATIVE = new Set<number>([Errno.ENOENT, Errno.ENOTDIR, Errno.ELOOP]);
const NEGATIVE_TEXT: Record<number, string> = {
  [Errno.ENOENT]: 'no such file or directory',
  [Errno.ENOTDIR]: 'not a directory',
  [Errno.ELOOP]: 'too many levels of symbolic links',
};

export interface CacheCounters {
  hits: Record<CacheTier, number>;
  misses: number;
}

function invalid(message: string, path?: Buffer): StrataError {
  return new StrataError(Errno.EINVAL, message, { code: GrpcCode.INVALID_ARGUMENT, path });
}

function checkOffset(what: string, value: number, path: Buffer): void {
  // uint64 values beyond 2^53 never get here (the decoder refuses them); this is the rest.
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(`${what} ${value} is out of range`, path);
}

function toBuffer(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * The projection operations shared by the unary API and the Session stream:
 * request validation, chain lookup, the metadata cache in front of the
 * traversal engine, and file data through an fd cache.
 */
export class ProjectionOps {
  readonly counters: CacheCounters = { hits: { memory: 0, redis: 0 }, misses: 0 };
  /** File bytes answered (metrics read it; nothing else does). */
  bytesServed = 0;
  private readonly inflight = new Map<string, Promise<NodeRecord>>();
  /** Decoded listings, so paging through a huge directory does not decode it once per page. */
  private readonly listings = new LRUCache<string, DirEntry[]>({ max: 64 });
  private readonly fds = new FdCache();

  constructor(
    private readonly chains: Chains,
    private readonly cache: MetadataCache,
  ) {}

  view(ref: LayerRef): Promise<ChainView> {
    return this.chains.view(ref);
  }

  async stat(ref: LayerRef, path: Buffer): Promise<StatResponse> {
    const view = await this.view(ref);
    const { rec } = await this.node(view, path);
    return { attr: rec.attr };
  }

  async readDir(ref: LayerRef, path: Buffer, offset: number, limit: number): Promise<ReadDirResponse> {
    checkOffset('readdir offset', offset, path);
    const view = await this.view(ref);
    const { canon, rec } = await this.node(view, path);
    if (!rec.directory) throw new StrataError(Errno.ENOTDIR, `not a directory: ${printable(canon)}`, { path: canon });
    const entries = await this.listing(view, canon);
    const n = limit === 0 ? READDIR_DEFAULT_LIMIT : Math.min(limit, READDIR_MAX_LIMIT);
    const page = entries.slice(offset, offset + n);
    return { entries: page, eof: offset + page.length >= entries.length, dirAttr: rec.attr };
  }

  /** One read of at most maxLength bytes; length 0 means "as much as allowed". */
  async read(ref: LayerRef, path: Buffer, offset: number, length: number, maxLength: number): Promise<ReadResponse> {
    checkOffset('read offset', offset, path);
    checkOffset('read length', length, path);
    const view = await this.view(ref);
    const { canon, rec } = await this.node(view, path);
    return this.readNode(view, canon, rec, offset, length === 0 ? maxLength : Math.min(length, maxLength));
  }

  /** A byte range in chunks, for the streamed unary Read; length 0 reads to end of file. */
  async *readStream(ref: LayerRef, path: Buffer, offset: number, length: number): AsyncGenerator<ReadResponse> {
    checkOffset('read offset', offset, path);
    checkOffset('read length', length, path);
    const view = await this.view(ref);
    const { canon, rec } = await this.node(view, path);
    const end = length === 0 ? Number.MAX_SAFE_INTEGER : offset + length;
    let pos = offset;
    for (;;) {
      const chunk = await this.readNode(view, canon, rec, pos, Math.min(READ_CHUNK, end - pos));
      pos += chunk.data.length;
      const last = chunk.eof || pos >= end || chunk.data.length === 0;
      yield chunk;
      if (last) return;
    }
  }

  async readLink(ref: LayerRef, path: Buffer): Promise<ReadLinkResponse> {
    const view = await this.view(ref);
    const { canon, rec } = await this.node(view, path);
    if (((rec.attr?.mode ?? 0) & fsc.S_IFMT) !== fsc.S_IFLNK) throw invalid(`not a symlink: ${printable(canon)}`, canon);
    return { target: rec.linkTarget };
  }

  async listXattr(ref: LayerRef, path: Buffer): Promise<ListXattrResponse> {
    const view = await this.view(ref);
    const xattrs = await this.xattrs(view, path);
    return { names: xattrs.xattrs.map((x) => x.name) };
  }

  async getXattr(ref: LayerRef, path: Buffer, name: string): Promise<GetXattrResponse> {
    if (name === '' || name.length > 255 || name.includes('\0')) throw invalid(`bad xattr name ${JSON.stringify(name)}`, path);
    const view = await this.view(ref);
    const xattrs = await this.xattrs(view, path);
    const found = xattrs.xattrs.find((x) => x.name === name);
    if (!found) {
      throw new StrataError(Errno.ENODATA, `no attribute ${name} on ${printable(path)}`, { path, code: GrpcCode.NOT_FOUND });
    }
    return { value: found.value };
  }

  async statFs(ref: LayerRef): Promise<StatFsResponse> {
    const view = await this.view(ref);
    return view.projection.statfs();
  }

  /**
   * The subtree's metadata depth first (parents before children, siblings
   * sorted), built from the same cached listings ReadDir serves: a walk
   * fills the shared cache, and a walk on another resolver (another host's
   * agent prefetching the same layer) reads it from Redis instead of the
   * store. Listings are fetched ahead of the walk, a window at a time.
   */
  async *walk(ref: LayerRef, path: Buffer, maxDepth: number, includeLinkTargets: boolean): AsyncGenerator<WalkEntry[]> {
    const view = await this.view(ref);
    const { canon, rec } = await this.node(view, path);
    const linkOf = async (p: Buffer, attr: Attr, known?: Buffer): Promise<Buffer | undefined> =>
      includeLinkTargets && (attr.mode & fsc.S_IFMT) === fsc.S_IFLNK ? (known ?? (await this.node(view, p)).rec.linkTarget) : undefined;
    const entry = (p: Buffer, attr: Attr, link: Buffer | undefined): WalkEntry => (link ? { path: p, attr, linkTarget: link } : { path: p, attr });
    const rootAttr = rec.attr!;
    let batch: WalkEntry[] = [entry(canon, rootAttr, await linkOf(canon, rootAttr, rec.linkTarget))];
    if (!rec.directory) {
      yield batch;
      return;
    }
    const ahead = new ListingPrefetcher((dir) => this.listing(view, dir));
    const descend = (depth: number): boolean => maxDepth === 0 || depth < maxDepth;
    // Each directory is split into components once; its children's paths are built from them.
    const open = async (dir: Buffer, depth: number): Promise<{ parts: Buffer[]; entries: DirEntry[]; i: number; depth: number }> => {
      const entries = await ahead.take(dir);
      const parts = splitPath(dir);
      if (descend(depth)) ahead.want(entries.filter((e) => e.attr && (e.attr.mode & fsc.S_IFMT) === fsc.S_IFDIR).map((e) => joinPath([...parts, e.name])));
      return { parts, entries, i: 0, depth };
    };
    const stack = [await open(canon, 1)];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.i >= top.entries.length) {
        stack.pop();
        continue;
      }
      const e = top.entries[top.i++];
      if (!e.attr) continue;
      const p = joinPath([...top.parts, e.name]);
      batch.push(entry(p, e.attr, await linkOf(p, e.attr)));
      if (batch.length >= WALK_BATCH) {
        yield batch;
        batch = [];
      }
      if ((e.attr.mode & fsc.S_IFMT) === fsc.S_IFDIR && descend(top.depth)) stack.push(await open(p, top.depth + 1));
    }
    if (batch.length > 0) yield batch;
  }

  async *diff(from: LayerRef, to: LayerRef, path: Buffer): AsyncGenerator<Change[]> {
    const canon = joinPath(splitPath(path));
    const [a, b] = await Promise.all([this.view(from), this.view(to)]);
    yield* diff(a.projection, b.projection, canon);
  }

  close(): void {
    this.fds.clear();
  }

  /** A path's node record: from the cache, or resolved once however many requests want it at the same time. */
  async node(view: ChainView, path: Buffer): Promise<{ canon: Buffer; rec: NodeRecord }> {
    const canon = joinPath(splitPath(path));
    const key = recordKey(view.key, 'n', canon);
    const hit = await this.cached(view, key);
    let rec: NodeRecord;
    if (hit) {
      rec = NodeRecord.decode(hit);
    } else {
      let pending = this.inflight.get(key);
      if (!pending) {
        pending = this.resolveNode(view, canon, key).finally(() => this.inflight.delete(key));
        this.inflight.set(key, pending);
      }
      rec = await pending;
    }
    if (rec.errno !== 0) {
      throw new StrataError(rec.errno, `${NEGATIVE_TEXT[rec.errno] ?? errnoName(rec.errno)}: ${printable(canon)}`, { path: canon });
    }
    return { canon, rec };
  }

  /** A record's bytes from the nearest tier that has them (an in-process hit without a promise), counted by tier. */
  private async cached(view: ChainView, key: string): Promise<Buffer | undefined> {
    const near = this.cache.peek?.(key);
    const hit = near ? { value: near, tier: 'memory' as const } : await this.cache.get(key, view.ttlMs);
    if (hit) this.counters.hits[hit.tier]++;
    else this.counters.misses++;
    return hit?.value;
  }

  /** Writes a record behind the request: a slow or absent Redis never delays the answer. */
  private store(view: ChainView, key: string, encoded: Uint8Array): void {
    void this.cache.set(key, toBuffer(encoded), view.ttlMs);
  }

  private async resolveNode(view: ChainView, canon: Buffer, key: string): Promise<NodeRecord> {
    let rec: NodeRecord;
    try {
      rec = await inSpan('store.lookup', () => ({ 'strata.path': printable(canon) }), async () => this.recordOf(await view.projection.lookup(canon)), STORE_SPAN);
    } catch (err) {
      if (!isStrataError(err) || !NEGATIVE.has(err.errno)) throw err;
      rec = { errno: err.errno, attr: undefined, locations: [], directory: false, linkTarget: Buffer.alloc(0) };
    }
    this.store(view, key, NodeRecord.encode(rec).finish());
    return rec;
  }

  private async recordOf(node: Node): Promise<NodeRecord> {
    const attr = attrOf(node);
    const reals = node.kind === 'dir' ? node.dirs : [node.real];
    let linkTarget = Buffer.alloc(0);
    if (node.kind === 'leaf' && node.st.isSymbolicLink()) {
      linkTarget = await fs.readlink(node.real, { encoding: 'buffer' });
    }
    return { errno: 0, attr, locations: reals.map((r) => this.relative(r)), directory: node.kind === 'dir', linkTarget };
  }

  /** Store-relative location: replicas may mount the shared store at different paths. */
  private relative(real: Buffer): Buffer {
    const root = this.chains.storeRealRoot;
    if (real.length > root.length && real[root.length] === 0x2f && real.subarray(0, root.length).equals(root)) {
      return real.subarray(root.length + 1);
    }
    throw new StrataError(Errno.EIO, `layer data ${printable(real)} is outside the store`, { code: GrpcCode.INTERNAL });
  }

  private absolute(location: Uint8Array): Buffer {
    return Buffer.concat([this.chains.storeRealRoot, Buffer.from('/'), location]);
  }

  private async listing(view: ChainView, canon: Buffer): Promise<DirEntry[]> {
    const key = recordKey(view.key, 'd', canon);
    const decoded = this.listings.get(key);
    if (decoded) return decoded;
    const hit = await this.cached(view, key);
    let entries: DirEntry[];
    if (hit) {
      entries = ListingRecord.decode(hit).entries;
    } else {
      entries = await inSpan('store.readdir', () => ({ 'strata.path': printable(canon) }), () => this.readDirectory(view, canon), STORE_SPAN);
      this.store(view, key, ListingRecord.encode({ entries }).finish());
    }
    this.listings.set(key, entries, view.ttlMs ? { ttl: view.ttlMs } : undefined);
    return entries;
  }

  /**
   * A directory from the store. The merge already found the node behind
   * every entry, so their records are cached too: the reads and lookups that
   * follow a listing (or a Walk) skip the layer-by-layer lookup.
   */
  private async readDirectory(view: ChainView, canon: Buffer): Promise<DirEntry[]> {
    const merged = await view.projection.readdirNodes(canon);
    const parts = splitPath(canon);
    const entries: DirEntry[] = [];
    for (const e of merged) {
      const rec = await this.recordOf(e.node);
      entries.push({ name: e.name, attr: rec.attr });
      const child = joinPath([...parts, e.name]);
      this.store(view, recordKey(view.key, 'n', child), NodeRecord.encode(rec).finish());
    }
    return entries;
  }

  private async xattrs(view: ChainView, path: Buffer): Promise<XattrRecord> {
    const { canon } = await this.node(view, path);
    const key = recordKey(view.key, 'x', canon);
    const hit = await this.cached(view, key);
    if (hit) return XattrRecord.decode(hit);
    return inSpan('store.xattrs', () => ({ 'strata.path': printable(canon) }), () => this.readXattrs(view, canon, key), STORE_SPAN);
  }

  private async readXattrs(view: ChainView, canon: Buffer, key: string): Promise<XattrRecord> {
    const names = await view.projection.listXattr(canon);
    const xattrs = [];
    for (const name of names) {
      const value = await view.projection.getXattr(canon, name).catch((err: unknown) => {
        if (isStrataError(err) && err.errno === Errno.ENODATA) return undefined; // removed since listing
        throw err;
      });
      if (value) xattrs.push({ name, value });
    }
    const rec: XattrRecord = { xattrs };
    this.store(view, key, XattrRecord.encode(rec).finish());
    return rec;
  }

  private async readNode(view: ChainView, canon: Buffer, rec: NodeRecord, offset: number, length: number): Promise<ReadResponse> {
    const r = await inSpan('store.read', () => ({ 'strata.path': printable(canon), 'strata.offset': offset, 'strata.length': length }), () => this.readData(view, canon, rec, offset, length), STORE_SPAN);
    this.bytesServed += r.data.length;
    return r;
  }

  private async readData(view: ChainView, canon: Buffer, rec: NodeRecord, offset: number, length: number): Promise<ReadResponse> {
    if (rec.directory) throw new StrataError(Errno.EISDIR, `is a directory: ${printable(canon)}`, { path: canon });
    const mode = rec.attr?.mode ?? 0;
    if ((mode & fsc.S_IFMT) !== fsc.S_IFREG) throw invalid(`not a regular file: ${printable(canon)}`, canon);
    if (view.ttlMs !== undefined) {
      // LIVE: the file may be replaced at any time; the projection opens it afresh.
      const r = await view.projection.read(canon, offset, length);
      return { offset, data: r.data, eof: r.eof };
    }
    const size = rec.attr?.size ?? 0;
    if (length === 0 || offset >= size) return { offset, data: Buffer.alloc(0), eof: offset >= size };
    const want = Math.min(length, size - offset);
    const file = await this.fds.acquire(this.absolute(rec.locations[0])).catch((err: unknown) => {
      throw fromSystemError(err, `open ${printable(canon)}`, canon);
    });
    try {
      const data = await readAt(file.handle, offset, want);
      return { offset, data, eof: offset + data.length >= size };
    } finally {
      file.release();
    }
  }
}
