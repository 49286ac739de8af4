import { LRUCache } from 'lru-cache';
import { Errno, StrataError, errorMessage } from '@strata/errors';
import { isLinkMode } from '@strata/posix';
import type { Logger } from '@strata/telemetry';
import { type WalkEntry, type WalkError, joinPath, splitPath } from '@strata/traversal';
import type { ChainView } from '../chains';
import type { Metadata } from '../projection/metadata';
import { walkTree } from '../projection/tree-walk';
import { DEFAULT_MAX_INDEX_BYTES, IndexBuilder, IndexRejected, type ParsedIndex, attrAt, isDamaged, parseIndex } from './index-format';
import { IndexStore } from './index-store';
import { childrenOf, findPath, walkIndex } from './index-walk';
import type { Attr } from '@strata/protocol';

/** Damage that is a property of the sealed tree (the same on every replica, every time): indexed like answers. */
const DETERMINISTIC_ERRNOS = new Set<number>([Errno.EUCLEAN, Errno.EBADMSG, Errno.EOPNOTSUPP, Errno.ENOENT, Errno.ENOTDIR, Errno.ELOOP]);
/** An index file found unusable is not read again for this long (another replica may replace it meanwhile). */
const REJECTED_RECHECK_MS = 60_000;
/**
 * A chain without an index file is not looked for again by Stat and
 * ReadDir for this long: they must not pay a failed open each. (Walks
 * always look: a full one builds the index when there is none.)
 */
const ABSENT_RECHECK_MS = 5_000;
/** A chain found not indexable is tried again after this long. */
const UNINDEXABLE_RECHECK_MS = 10 * 60_000;
/** Decoded directory listings kept for paging through large directories. */
const LISTINGS_KEPT = 64;

export interface MetadataIndexOptions {
  /** Where index files are kept: `<store>/.strata/index`. */
  dir: string;
  log?: Logger;
  /** Bound of one index (file and memory). */
  maxIndexBytes?: number;
  /** Indexes kept in memory, by bytes (default: one index's bound, 128 MiB). */
  memoryBytes?: number;
  /** All index files of the store together (default DEFAULT_MAX_DIR_BYTES, 8 GiB); the least recently written go first. */
  maxDirBytes?: number;
}

/** What happened to indexes in this process (the test and the benchmark read them; logged with every event). */
export interface MetadataIndexCounters {
  /** Walks answered from an index. */
  served: number;
  /** Walks of a sealed chain answered by traversal (no index, or a path it does not hold). */
  traversed: number;
  /** Stat and ReadDir requests answered from an index. */
  lookups: number;
  /** Indexes built here (a full walk). */
  built: number;
  /** Indexes read from the store (built by this or another replica). */
  loaded: number;
  /** Index files ignored: corrupt, foreign, another version, too big. */
  rejected: number;
  /** Builds given up: the chain is not indexable (a failed listing, too big) or the walk was cut short. */
  abandoned: number;
}

function needsTarget(e: WalkEntry | WalkError): e is WalkEntry {
  return !('error' in e) && isLinkMode(e.attr.mode) && !e.linkTarget;
}

/** A walk entry as the index keeps it; an error that may not last (EIO, EACCES, ...) makes the chain not indexable. */
function indexable(e: WalkEntry | WalkError): WalkEntry | WalkError {
  if ('error' in e && !DETERMINISTIC_ERRNOS.has(e.error.errno)) throw StrataError.invalid(`not indexable: ${e.error.errnoName} may not last`);
  return e;
}

/**
 * The metadata index of each sealed chain (issue 28): a Walk of a sealed
 * chain is answered from it, and it is built by the first full Walk (of
 * "/", every depth) that finds none, from the very entries that Walk sends,
 * then written to the store for every replica. LIVE chains never use one:
 * their tree may change under it.
 */
export class MetadataIndexes {
  readonly counters: MetadataIndexCounters = { served: 0, traversed: 0, lookups: 0, built: 0, loaded: 0, rejected: 0, abandoned: 0 };
  readonly store: IndexStore;
  private readonly maxBytes: number;
  private readonly memory: LRUCache<string, ParsedIndex>;
  private readonly loading = new Map<string, Promise<ParsedIndex | undefined>>();
  private readonly building = new Set<string>();
  /** Builds finishing behind their walks (idle() waits for them). */
  private readonly finishing = new Set<Promise<void>>();
  /** Chains whose build was given up (not indexable): not tried again for a while (an EIO may have been passing). */
  private readonly unindexable = new LRUCache<string, true>({ max: 4096, ttl: UNINDEXABLE_RECHECK_MS });
  private readonly rejected = new LRUCache<string, true>({ max: 4096, ttl: REJECTED_RECHECK_MS });
  private readonly absent = new LRUCache<string, true>({ max: 4096, ttl: ABSENT_RECHECK_MS });
  private readonly listings = new LRUCache<string, { name: Buffer; attr: Attr }[]>({ max: LISTINGS_KEPT });

  constructor(private readonly options: MetadataIndexOptions) {
    // Offsets in an index are 32-bit.
    this.maxBytes = Math.min(options.maxIndexBytes ?? DEFAULT_MAX_INDEX_BYTES, 2 ** 32 - 1);
    this.store = new IndexStore(options.dir, this.maxBytes, options.maxDirBytes);
    this.memory = new LRUCache<string, ParsedIndex>({
      maxSize: options.memoryBytes ?? this.maxBytes,
      // The file's bytes and ~18 bytes of typed arrays per entry.
      sizeCalculation: (v) => v.buf.length + v.count * 18 + 1,
    });
  }

  async *walk(meta: Metadata, view: ChainView, path: Buffer, maxDepth: number, includeLinkTargets: boolean): AsyncGenerator<(WalkEntry | WalkError)[]> {
    if (view.ttlMs !== undefined) {
      yield* walkTree(meta, view, path, maxDepth, includeLinkTargets);
      return;
    }
    // The same check and the same error as walkTree's first lookup.
    const parts = splitPath(path);
    const idx = await this.index(view.key);
    if (idx) {
      const root = findPath(idx, parts);
      if (root !== undefined) {
        this.counters.served++;
        this.options.log?.debug({ event: 'resolver.metadata_index', action: 'served', chain: view.key, entries: idx.end[root] - root, ...this.counters }, 'walk answered from the metadata index');
        yield* walkIndex(idx, root, joinPath(parts), maxDepth, includeLinkTargets);
        return;
      }
    } else if (parts.length === 0 && maxDepth === 0 && !this.building.has(view.key) && !this.unindexable.has(view.key)) {
      yield* this.walkAndBuild(meta, view, path, includeLinkTargets);
      return;
    }
    this.counters.traversed++;
    yield* walkTree(meta, view, path, maxDepth, includeLinkTargets);
  }

  /**
   * A path of a sealed chain as its index holds it (literally: not through
   * a symlink, not damaged), or undefined: the traversal answers then,
   * errors included.
   */
  private async held(view: ChainView, path: Buffer): Promise<{ idx: ParsedIndex; pos: number } | undefined> {
    if (view.ttlMs !== undefined || this.absent.has(view.key)) return undefined;
    const idx = await this.index(view.key);
    if (!idx) {
      this.absent.set(view.key, true);
      return undefined;
    }
    let parts: Buffer[];
    try {
      parts = splitPath(path);
    } catch {
      return undefined;
    }
    const pos = findPath(idx, parts);
    return pos === undefined || isDamaged(idx, pos) ? undefined : { idx, pos };
  }

  /** Stat from the index. */
  async attr(view: ChainView, path: Buffer): Promise<Attr | undefined> {
    const hit = await this.held(view, path);
    if (!hit) return undefined;
    this.counters.lookups++;
    return attrAt(hit.idx, hit.pos);
  }

  /** ReadDir from the index: the directory's attributes and its sorted entries, or 'not-dir' for a path that is not one. */
  async listing(view: ChainView, path: Buffer): Promise<{ dirAttr: Attr; entries: { name: Buffer; attr: Attr }[] } | 'not-dir' | undefined> {
    const hit = await this.held(view, path);
    if (!hit) return undefined;
    if (!hit.idx.dir[hit.pos]) {
      this.counters.lookups++;
      return 'not-dir';
    }
    const key = `${view.key}\0${hit.pos}`;
    let entries = this.listings.get(key);
    if (!entries) {
      entries = childrenOf(hit.idx, hit.pos);
      if (!entries) return undefined;
      this.listings.set(key, entries);
    }
    this.counters.lookups++;
    return { dirAttr: attrAt(hit.idx, hit.pos), entries };
  }

  /** The chain's index from memory or the store; undefined when there is none usable. Read once however many walks ask. */
  private async index(key: string): Promise<ParsedIndex | undefined> {
    const near = this.memory.get(key);
    if (near) return near;
    if (this.rejected.has(key)) return undefined;
    let p = this.loading.get(key);
    if (!p) {
      p = this.load(key).finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }

  private async load(key: string): Promise<ParsedIndex | undefined> {
    const started = performance.now();
    const file = this.store.fileOf(key);
    try {
      const buf = await this.store.read(key);
      if (!buf) return undefined;
      const idx = parseIndex(buf, key, this.maxBytes);
      this.memory.set(key, idx);
      this.counters.loaded++;
      this.options.log?.info(
        { event: 'resolver.metadata_index', action: 'loaded', chain: key, file, entries: idx.count, bytes: buf.length, ms: Math.round(performance.now() - started), ...this.counters },
        'metadata index read from the store',
      );
      return idx;
    } catch (err) {
      // Corrupt, foreign, another version, too big or unreadable: one line, then walked by traversal, and the next full walk writes a good one over it.
      this.rejected.set(key, true);
      this.counters.rejected++;
      const reason = err instanceof IndexRejected ? err.reason : 'unreadable';
      this.options.log?.warn({ event: 'resolver.metadata_index', action: 'ignored', reason, chain: key, file, err: errorMessage(err), ...this.counters }, `metadata index ${file} ignored (${reason}): ${errorMessage(err)}; it is rebuilt`);
      return undefined;
    }
  }

  /**
   * A full walk by traversal, its entries sent as they come and recorded
   * as they pass; when the walk completes, the index is kept in memory and
   * written to the store behind the answer.
   */
  private async *walkAndBuild(meta: Metadata, view: ChainView, path: Buffer, includeLinkTargets: boolean): AsyncGenerator<(WalkEntry | WalkError)[]> {
    const key = view.key;
    this.building.add(key);
    this.counters.traversed++;
    const started = performance.now();
    let builder: IndexBuilder | undefined = new IndexBuilder(key, this.maxBytes);
    let why = '';
    let completed = false;
    try {
      for await (const batch of walkTree(meta, view, path, 0, includeLinkTargets)) {
        if (builder) {
          try {
            for (const e of batch) builder.add(needsTarget(e) ? await this.withTarget(meta, view, e) : indexable(e));
          } catch (err) {
            builder = undefined;
            why = errorMessage(err);
          }
        }
        yield batch;
      }
      completed = true;
    } finally {
      this.building.delete(key);
      if (!builder) this.abandon(key, why, true);
      else if (!completed) this.abandon(key, 'the walk failed or was cancelled', false);
      else {
        const b = builder;
        const walkMs = performance.now() - started;
        // Encoding and checking take tens of ms for 25k entries: after the Walk's end is sent, not before.
        this.behind(new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.finishBuild(key, b, walkMs)));
      }
    }
  }

  private behind(p: Promise<void>): void {
    this.finishing.add(p);
    void p.finally(() => this.finishing.delete(p));
  }

  /** Resolves when no index is being finished or written (shutdown, tests). */
  async idle(): Promise<void> {
    while (this.finishing.size > 0) await Promise.allSettled([...this.finishing]);
  }

  /** A link the walk sent without its target (it was not asked for), with it. */
  private async withTarget(meta: Metadata, view: ChainView, e: WalkEntry): Promise<WalkEntry> {
    return { ...e, linkTarget: (await meta.node(view, e.path)).rec.linkTarget };
  }

  private abandon(key: string, why: string, permanent: boolean): void {
    this.counters.abandoned++;
    if (permanent) this.unindexable.set(key, true);
    this.options.log?.info({ event: 'resolver.metadata_index', action: 'abandoned', chain: key, why, ...this.counters }, `metadata index not built: ${why}`);
  }

  private async finishBuild(key: string, builder: IndexBuilder, walkMs: number): Promise<void> {
    let data: Buffer;
    let idx: ParsedIndex;
    try {
      data = builder.finish();
      idx = parseIndex(data, key, this.maxBytes);
    } catch (err) {
      this.abandon(key, errorMessage(err), true);
      return;
    }
    this.memory.set(key, idx);
    this.rejected.delete(key);
    this.absent.delete(key);
    const fields = { event: 'resolver.metadata_index', chain: key, entries: idx.count, bytes: data.length, walkMs: Math.round(walkMs) };
    try {
      const file = await this.store.write(key, data);
      this.counters.built++;
      this.options.log?.info({ ...fields, action: 'built', file, ...this.counters }, `metadata index of ${idx.count} entries built and written to ${file}`);
    } catch (err) {
      // Kept in this process; another replica builds its own.
      this.counters.built++;
      this.options.log?.warn({ ...fields, action: 'write_failed', err: errorMessage(err), ...this.counters }, `metadata index built but not written: ${errorMessage(err)}`);
    }
  }
}
