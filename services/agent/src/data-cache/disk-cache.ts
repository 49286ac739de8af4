import { randomBytes } from 'node:crypto';
import { closeSync, constants, mkdirSync, openSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LRUCache } from 'lru-cache';
import { StrataError } from '@strata/errors';
import type { Logger } from '@strata/telemetry';
import { attrsOf, sameFile, type FileAttrs } from './chain-identity';
import { writeIndex, type IndexedEntry } from './cache-index';
import { loadCacheDir, removeEntry, writeFormatSync } from './cache-load';
import { DATA_SUFFIX, type EntryRecord } from './entry-record';
import { RecordJournal } from './record-journal';
import { datasyncFd } from './fd-calls';
import { sumOfFile } from './file-sum';

/** What a file kept across restarts was filled from: checked before a later agent reuses it. */
export interface FileOrigin {
  readonly attrs: FileAttrs;
  /** The chunk size of the fill (its sum is taken over chunks of it). */
  readonly chunkSize: number;
}

/** One layer file held whole on disk, or on its way there. */
export interface CachedFile {
  /** What names its bytes in the cache. */
  readonly id: string;
  /** Where its bytes are (the file exists from the start of the fill). */
  readonly file: string;
  readonly size: number;
  ready: boolean;
  /** Stops a fill still running, tells the mount its file data is gone. */
  readonly gone: Gone;
  /** Set for a file that may outlive this agent (its mount named the chain's identity). */
  readonly origin?: FileOrigin;
  /** Its record is on disk: the file stays at close, for the next agent. */
  kept?: boolean;
  /** Left by an earlier agent and not yet checked (attributes, size, sum): never served until reuse() says so. */
  unverified?: boolean;
  /** The sum in its record. */
  sum?: number;
  /** A reuse check in progress, shared by the mounts asking at once. */
  checking?: Promise<boolean>;
}

export interface DiskCacheStats {
  files: number;
  bytes: number;
  fills: number;
  fillBytes: number;
  fillFailures: number;
  evictions: number;
  diskReads: number;
  /** Files an earlier agent left that were kept at start. */
  loaded: number;
  /** Files found at start and removed (incomplete, corrupt, over the size bound). */
  loadDropped: number;
  /** Files left by an earlier agent that a mount took after checking them: fetches saved. */
  reused: number;
  /** Files left by an earlier agent (or filled for another state of the file) found changed and removed. */
  reuseRejected: number;
}

export interface DiskCacheOptions {
  /** Where the line about what was found at start goes (none: nothing said). */
  log?: Logger;
  /** Check a kept file's sum before its first reuse (default true; false trusts size and attributes alone). */
  verifySums?: boolean;
  /**
   * fdatasync each filled file before its record is appended (default:
   * only when verifySums is false). Not needed for safety: a file is served by a later agent only
   * once its size and sum are checked again, so bytes a power cut lost are
   * fetched again, never served; the sync only saves those fetches, and
   * cost the agent some 60 µs of its main thread per file plus the
   * writeback in its threadpool (a cold read of 27k small files fills as many).
   */
  syncData?: boolean;
}

/** Files whose bytes are not worth a file of their own, and bounds on one file against the whole. */
const MIN_FILE_BYTES = 1;
const MAX_SHARE = 4;
/** Records read from their own files at start (an older agent's layout) beyond which the snapshot is written again at once. */
const SNAPSHOT_AFTER_READS = 256;
/**
 * Journal lines beyond which a snapshot replaces them (and at least as
 * many as files kept: the snapshot's cost, a line per kept file, is spread
 * over as many seals), and the least time between two snapshots.
 */
const SNAPSHOT_EVERY_RECORDS = 4096;
const SNAPSHOT_INTERVAL_MS = 30_000;
/** Data files synced at once, with syncData (parallel fdatasyncs share the file system's journal commits). */
const SYNCS_AT_ONCE = 4;
/** Records appended to the journal at once, with one fdatasync; and how long a record waits for others to join it. */
const RECORDS_PER_BATCH = 512;
const SEAL_DELAY_MS = 200;
/** Files waiting to be sealed with their descriptor still open (beyond it the descriptor is closed, and opened again to sync). */
const MAX_OPEN_SEALS = 512;
/** Entries in a snapshot at most (about 60 MiB of lines, what the load reads of one). */
const MAX_SNAPSHOT_ENTRIES = 200_000;
const MAX_SEAL_QUEUE = 4096;

/**
 * The agent's on-disk data cache: sealed layer files kept whole, one cache
 * file each, shared by every mount and evicted by size (least recently
 * filled or read first). A mount hands the kernel these files for FUSE
 * passthrough, so reads of them never reach the agent; eviction therefore
 * only stops new opens from using a file, the kernel keeps what open files
 * still hold.
 *
 * Files filled for a chain named by its identity are kept across agent
 * restarts and crashes: each gets a record once its bytes are complete
 * (appended to the journal in batches, record-journal.ts), the next agent
 * keeps those within its size bound (cache-load.ts), and a mount takes one
 * only after its attributes, size and sum are checked again (reuse). Anything else (a fill cut short,
 * a file of a mount without that identity) is removed at the next start.
 */
export class DiskCache {
  private readonly lru: LRUCache<string, CachedFile>;
  private closing = false;
  /** The last journal append or snapshot, written or being written (one at a time: a snapshot empties the journal). */
  private records: Promise<void> = Promise.resolve();
  private readonly journal?: RecordJournal;
  /** Lines in the journal, the last start's included. */
  private journalLines = 0;
  private lastSnapshotAt = -Infinity;
  private snapshotTimer?: NodeJS.Timeout;
  private readonly sealQueue: Array<{ f: CachedFile; sum: number; fd?: number }> = [];
  /** Queued files whose descriptor is still open. */
  private openSeals = 0;
  /** The batch being sealed (one at a time: its records are one append). */
  private sealing?: Promise<void>;
  private sealTimer?: NodeJS.Timeout;
  private readonly counters = { fills: 0, fillBytes: 0, fillFailures: 0, evictions: 0, diskReads: 0, loaded: 0, loadDropped: 0, reused: 0, reuseRejected: 0 };

  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
    private readonly opts: DiskCacheOptions = {},
    /** The behaviour before issue 27: emptied at open, removed at close, nothing kept. */
    private readonly transient = false,
  ) {
    if (dir !== '' && !transient) this.journal = new RecordJournal(dir);
    this.lru = new LRUCache<string, CachedFile>({
      maxSize: Math.max(maxBytes, 1),
      sizeCalculation: (f) => Math.max(f.size, 1),
      dispose: (f, _key, reason) => {
        if (reason === 'evict') this.counters.evictions++;
        f.gone.abort();
        // At close, close() itself removes what has no record (and keeps what has one, for the next agent).
        if (this.closing || this.dir === '') return;
        void removeEntry(this.dir, path.basename(f.file, DATA_SUFFIX)).catch(() => undefined);
      },
    });
  }

  /** No cache: every read goes through the agent. */
  static none(): DiskCache {
    return new DiskCache('', 0);
  }

  /**
   * The cache in `dir` (created 0700), with what an earlier agent left
   * there and may still be reused; a directory of an unknown layout is
   * emptied, with one line saying so.
   */
  static async open(dir: string, maxBytes: number, opts?: DiskCacheOptions): Promise<DiskCache> {
    if (opts === undefined) return DiskCache.openTransient(dir, maxBytes);
    const cache = new DiskCache(dir, maxBytes, opts);
    const started = performance.now();
    const found = await loadCacheDir(dir, maxBytes, (size) => cache.takes(size)).catch((err: unknown) => {
      throw StrataError.from(err, `opening the data cache ${dir}`);
    });
    for (const e of found.entries) {
      const f: CachedFile = {
        id: e.record.id,
        file: path.join(dir, e.name + DATA_SUFFIX),
        size: e.record.size,
        ready: true,
        gone: goneSignal(),
        origin: { attrs: e.record.attrs, chunkSize: e.record.chunkSize },
        kept: true,
        unverified: true,
        sum: e.record.sum,
      };
      cache.lru.set(e.record.id, f);
    }
    cache.counters.loaded = found.entries.length;
    cache.journalLines = found.journalLines;
    cache.counters.loadDropped = found.dropped;
    const ms = Math.round(performance.now() - started);
    if (found.reset !== undefined) {
      opts.log?.warn({ event: 'agent.data_cache.reset', dir, reason: found.reset }, 'data cache emptied: its layout is not this agent’s');
    } else {
      opts.log?.info({ event: 'agent.data_cache.loaded', dir, files: found.entries.length, bytes: cache.lru.calculatedSize, dropped: found.dropped, recordsRead: found.recordsRead, journalLines: found.journalLines, journalDamaged: found.journalDamaged, ms }, 'data cache kept from the last run');
    }
    // Records read one by one (an older agent's layout), or a journal a crash tore: a new snapshot spares the next start those reads,
    // and empties the journal (a torn last line stays unreadable, but a fresh journal is cheaper to read).
    if (found.recordsRead >= SNAPSHOT_AFTER_READS || found.journalDamaged > 0 || found.journalLines > Math.max(SNAPSHOT_EVERY_RECORDS, found.entries.length)) void cache.flush();
    return cache;
  }

  /**
   * Without options, as agents called it before files were kept across
   * restarts (and as an agent not yet passing them still does): the
   * directory is emptied at open and removed at close, nothing is kept.
   */
  private static async openTransient(dir: string, maxBytes: number): Promise<DiskCache> {
    await fs.rm(dir, { recursive: true, force: true }).catch((err: unknown) => {
      throw StrataError.from(err, `clearing the data cache ${dir}`);
    });
    await fs.mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      throw StrataError.from(err, `creating the data cache ${dir}`);
    });
    return new DiskCache(dir, maxBytes, {}, true);
  }

  /** Whether a file of this size is kept whole: not empty, and at most a quarter of the cache. */
  takes(size: number): boolean {
    return this.maxBytes > 0 && size >= MIN_FILE_BYTES && size <= this.maxBytes / MAX_SHARE;
  }

  /**
   * Room for a file about to be filled, under `id` (what names its bytes:
   * the chain's identity and its path, or the mount and node). Making room
   * may evict other files at once. With `origin` the file is kept across
   * restarts once sealed.
   */
  reserve(id: string, size: number, origin?: FileOrigin): CachedFile {
    // A fresh name per fill: an earlier file of the id may still be on its way out.
    const name = freshName();
    const f: CachedFile = { id, file: path.join(this.dir, name + DATA_SUFFIX), size, ready: false, gone: goneSignal(), ...(origin ? { origin: { attrs: attrsOf(origin.attrs), chunkSize: origin.chunkSize } } : {}) };
    this.lru.set(id, f);
    this.counters.fills++;
    return f;
  }

  /**
   * The reserved file created for writing, its descriptor (the caller's to
   * close, or seal's); the directory is made again if it was removed under
   * the agent. Synchronous: creating a file in the page cache costs some
   * 10 µs, a round trip through libuv's threadpool several times that in
   * the agent's own CPU (a cold read of many small files creates thousands).
   */
  create(f: CachedFile): number {
    const flags = constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | constants.O_NOFOLLOW;
    try {
      return openSync(f.file, flags, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      if (!this.transient) writeFormatSync(this.dir);
      // Its journal went with the directory: the next append makes another (not closed here: an append may be using it).
      this.journal?.reopenLater();
      return openSync(f.file, flags, 0o600);
    }
  }

  /** The file under `id` if it is still cached (and marks it used). */
  get(id: string): CachedFile | undefined {
    return this.lru.get(id);
  }

  /** The file under `id` without marking it used. */
  peek(id: string): CachedFile | undefined {
    return this.lru.peek(id);
  }

  filled(f: CachedFile): void {
    f.ready = true;
    this.counters.fillBytes += f.size;
  }

  /**
   * Makes a filled file one the next agent may reuse, soon: its record
   * appended to the journal with those of other files sealed meanwhile
   * (with syncData, once its bytes are synced on `fd`). `fd`, the
   * descriptor that wrote the file, is seal's to close in every case.
   * Done in the background, a batch at a time, so that it never holds up
   * the next fills (a cold read of many small files fills thousands); past
   * the queue's bound a file is simply not kept. Files without an origin,
   * or whose sum is unknown, stay this agent's alone.
   */
  seal(f: CachedFile, sum: number | undefined, fd?: number): void {
    const keeps = f.origin !== undefined && sum !== undefined && this.journal !== undefined && !this.closing && !f.gone.aborted && this.sealQueue.length < MAX_SEAL_QUEUE;
    let kept = fd;
    // Not kept, not synced, or too many descriptors held (this one is opened again to sync it when its turn comes).
    if (kept !== undefined && (!keeps || this.opts.syncData !== true || this.openSeals >= MAX_OPEN_SEALS)) {
      closeQuietly(kept);
      kept = undefined;
    }
    if (!keeps || sum === undefined) return;
    if (kept !== undefined) this.openSeals++;
    this.sealQueue.push({ f, sum, ...(kept !== undefined ? { fd: kept } : {}) });
    this.sealSoon();
  }

  /** The next batch once it is full, or once its first record has waited SEAL_DELAY_MS for others. */
  private sealSoon(): void {
    if (this.sealing !== undefined || this.sealQueue.length === 0 || this.closing) return;
    if (this.sealQueue.length >= RECORDS_PER_BATCH) {
      this.sealMore();
      return;
    }
    if (this.sealTimer !== undefined) return;
    this.sealTimer = setTimeout(() => this.sealMore(), SEAL_DELAY_MS);
    // A batch waiting never keeps the agent alive (close seals what is queued).
    this.sealTimer.unref();
  }

  private sealMore(): void {
    clearTimeout(this.sealTimer);
    this.sealTimer = undefined;
    if (this.sealing !== undefined || this.sealQueue.length === 0) return;
    const batch = this.sealQueue.splice(0, RECORDS_PER_BATCH);
    for (const e of batch) if (e.fd !== undefined) this.openSeals--;
    this.sealing = this.sealBatch(batch)
      .catch(() => undefined)
      .finally(() => {
        this.sealing = undefined;
        this.sealSoon();
      });
  }

  /** Appends the records of a batch at once (with syncData, of the files synced first, a few at a time). */
  private async sealBatch(batch: Array<{ f: CachedFile; sum: number; fd?: number }>): Promise<void> {
    let synced: Array<{ f: CachedFile; sum: number }> = batch;
    if (this.syncsData) {
      synced = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < batch.length) {
          const e = batch[next++];
          if (await this.syncData(e.f, e.fd)) synced.push(e);
        }
      };
      await Promise.all(Array.from({ length: Math.min(SYNCS_AT_ONCE, batch.length) }, worker));
    }
    const live: Array<{ f: CachedFile; sum: number }> = [];
    const entries: IndexedEntry[] = [];
    const now = Date.now();
    for (const e of synced) {
      if (e.f.gone.aborted || e.f.origin === undefined) continue;
      live.push(e);
      entries.push({ name: path.basename(e.f.file, DATA_SUFFIX), usedMs: now, record: recordFor(e.f, e.f.origin, e.sum) });
    }
    if (entries.length === 0 || this.journal === undefined) return;
    const journal = this.journal;
    const append = this.records.then(() => journal.append(entries));
    this.records = append.catch(() => undefined);
    try {
      await append;
    } catch (err) {
      this.opts.log?.debug({ event: 'agent.data_cache.seal_failed', dir: this.dir, files: entries.length, err: StrataError.from(err).message }, 'cached files not kept for the next agent');
      return;
    }
    // A file evicted meanwhile leaves a line naming a data file that is gone: ignored at the next start.
    for (const { f, sum } of live) {
      f.sum = sum;
      f.kept = true;
    }
    this.sealed(entries.length);
  }

  /** fdatasync of a filled file (on its own descriptor if it is still open), which is closed; false if it failed or left. */
  private async syncData(f: CachedFile, fd: number | undefined): Promise<boolean> {
    if (f.gone.aborted) {
      if (fd !== undefined) closeQuietly(fd);
      return false;
    }
    let own = fd;
    try {
      // fsync works on a read-only descriptor: it syncs the file, not the descriptor's writes.
      own ??= openSync(f.file, constants.O_RDONLY | constants.O_NOFOLLOW);
      await datasyncFd(own);
      return true;
    } catch (err) {
      this.opts.log?.debug({ event: 'agent.data_cache.seal_failed', file: f.file, err: StrataError.from(err).message }, 'cached file not kept for the next agent');
      return false;
    } finally {
      if (own !== undefined) closeQuietly(own);
    }
  }

  /**
   * Whether `f`, cached under `id`, may be served for a file whose
   * attributes are now `attrs`: they must be those it was filled with, and
   * a file left by an earlier agent must still have its size and its sum.
   * One that fails is removed (never served, filled again if read again).
   */
  async reuse(id: string, f: CachedFile, attrs: FileAttrs): Promise<boolean> {
    if (!f.ready || f.gone.aborted) return false;
    if (f.origin !== undefined && !sameFile(f.origin.attrs, attrs)) {
      this.reject(id, f);
      return false;
    }
    if (f.unverified !== true) return true;
    f.checking ??= this.check(f);
    const ok = await f.checking;
    if (!ok) {
      this.reject(id, f);
      return false;
    }
    if (f.unverified === true) {
      f.unverified = false;
      // No utimes (the LRU order of older agents' records): the snapshot at close, or the journal's seal times after a crash, say it now.
      this.counters.reused++;
    }
    return !f.gone.aborted;
  }

  private async check(f: CachedFile): Promise<boolean> {
    // The sum's read checks the file's type and size on the descriptor it reads: one open per check.
    if (this.opts.verifySums !== false && f.origin !== undefined && f.sum !== undefined) return (await sumOfFile(f.file, f.size, f.origin.chunkSize)) === f.sum;
    try {
      const st = await fs.lstat(f.file);
      return st.isFile() && st.size === f.size;
    } catch {
      return false;
    }
  }

  private reject(id: string, f: CachedFile): void {
    if (this.lru.peek(id) !== f) return;
    this.counters.reuseRejected++;
    this.lru.delete(id);
  }

  /** A fill that failed: its room is given back. */
  failed(id: string, f: CachedFile): void {
    this.counters.fillFailures++;
    if (this.lru.peek(id) === f) this.lru.delete(id);
  }

  /** A file that is no longer wanted (a fill stopped by its unmount, a file removed under the agent). */
  discard(id: string, f: CachedFile): void {
    if (this.lru.peek(id) === f) this.lru.delete(id);
  }

  diskRead(): void {
    this.counters.diskReads++;
  }

  /** Every file whose id starts with `prefix` (a mount going away). */
  drop(prefix: string): void {
    for (const k of [...this.lru.keys()]) if (k.startsWith(prefix)) this.lru.delete(k);
  }

  /**
   * At agent stop, after every mount is gone: files with a record stay
   * for the next agent (with a snapshot of their records in LRU order),
   * the rest go. The directory stays.
   */
  async close(): Promise<void> {
    if (this.transient) {
      this.closing = true;
      this.lru.clear();
      await fs.rm(this.dir, { recursive: true, force: true });
      return;
    }
    clearTimeout(this.snapshotTimer);
    this.snapshotTimer = undefined;
    if (this.syncsData) {
      // Files still waiting for their sync are not kept: a stop is not held up by thousands of them.
      for (const e of this.sealQueue.splice(0)) if (e.fd !== undefined) closeQuietly(e.fd);
      this.openSeals = 0;
    }
    // Records waiting for their batch are appended now: a write per RECORDS_PER_BATCH.
    for (let i = 0; i <= MAX_SEAL_QUEUE / RECORDS_PER_BATCH && (this.sealing !== undefined || this.sealQueue.length > 0); i++) {
      this.sealMore();
      await this.sealing;
    }
    clearTimeout(this.sealTimer);
    this.sealTimer = undefined;
    await this.flush();
    this.closing = true;
    await this.journal?.close().catch(() => undefined);
    const dropped = [...this.lru.values()].filter((f) => f.kept !== true);
    this.lru.clear();
    if (this.dir === '') return;
    await Promise.all(dropped.map((f) => removeEntry(this.dir, path.basename(f.file, DATA_SUFFIX)).catch(() => undefined)));
  }

  /**
   * Writes the snapshot of the kept files' records now (after any being
   * written): for a stop that hands the mounts over instead of closing.
   */
  async flush(): Promise<void> {
    if (this.journal === undefined || this.closing) return;
    const next = this.records.then(() => {
      this.lastSnapshotAt = performance.now();
      return this.writeSnapshot();
    });
    this.records = next;
    await next;
  }

  /** More kept files: a snapshot soon, once the journal holds more lines than a snapshot would. */
  private sealed(n: number): void {
    this.journalLines += n;
    if (this.journalLines < Math.max(SNAPSHOT_EVERY_RECORDS, this.lru.size) || this.snapshotTimer !== undefined || this.closing) return;
    const wait = Math.max(0, this.lastSnapshotAt + SNAPSHOT_INTERVAL_MS - performance.now());
    this.snapshotTimer = setTimeout(() => {
      this.snapshotTimer = undefined;
      void this.flush();
    }, wait);
    // A pending snapshot never keeps the agent alive.
    this.snapshotTimer.unref();
  }

  /**
   * The kept files' records in one file, least recently used first, then
   * the journal emptied (no append runs meanwhile: both are on `records`).
   * Failing costs the next start a longer journal, nothing else.
   */
  private async writeSnapshot(): Promise<void> {
    const kept: IndexedEntry[] = [];
    const now = Date.now();
    // Most recent first, each a millisecond older: the order is what matters, in the LRU here and at the next start.
    // Past the bound the least recent are left out (the next start reads their records).
    for (const f of this.lru.values()) {
      if (kept.length >= MAX_SNAPSHOT_ENTRIES) break;
      if (f.kept !== true || f.origin === undefined || f.sum === undefined) continue;
      kept.push({ name: path.basename(f.file, DATA_SUFFIX), usedMs: now - kept.length, record: recordFor(f, f.origin, f.sum) });
    }
    try {
      await writeIndex(this.dir, kept.reverse());
      // Past MAX_SNAPSHOT_ENTRIES the least recent were left out: their journal lines go too (they cost fetches after a restart).
      await this.journal?.truncate();
      this.journalLines = 0;
    } catch (err) {
      this.opts.log?.debug({ event: 'agent.data_cache.snapshot_failed', dir: this.dir, err: StrataError.from(err).message }, 'data cache snapshot not written');
    }
  }

  /** Without the sum check before reuse, a file's size is all that would catch bytes a power cut lost: then they are synced first. */
  private get syncsData(): boolean {
    return this.opts.syncData ?? this.opts.verifySums === false;
  }

  stats(): DiskCacheStats {
    return { files: this.lru.size, bytes: this.lru.calculatedSize, ...this.counters };
  }
}

function recordFor(f: CachedFile, origin: FileOrigin, sum: number): EntryRecord {
  return { id: f.id, size: f.size, attrs: origin.attrs, chunkSize: origin.chunkSize, sum };
}

/** Closes a descriptor of the agent's own; a failure (EIO of a lost write) changes nothing for the cache: the sum is checked before reuse. */
function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Nothing to do.
  }
}

/** Random bytes drawn for this many names at once: one draw costs some 20 µs, as much as a name's whole share of a batch. */
const NAMES_PER_DRAW = 256;
const NAME_BYTES = 12;
let names = Buffer.alloc(0);
let nameAt = 0;

/** 24 random hex digits, never one another fill (of this agent or any other) had: a record never describes other bytes. */
function freshName(): string {
  if (nameAt >= names.length) {
    names = randomBytes(NAME_BYTES * NAMES_PER_DRAW);
    nameAt = 0;
  }
  nameAt += NAME_BYTES;
  return names.toString('hex', nameAt - NAME_BYTES, nameAt);
}

function goneSignal(): Gone {
  return new Gone();
}

/**
 * A cached file leaving the cache, told to every mount using it. Not an
 * AbortController: making one, raising its listener bound and adding a
 * listener cost some 20 µs per filled file (a cold read of many small
 * files fills thousands), and its DOMException more at every eviction.
 */
export class Gone {
  private fns?: Set<() => void>;
  private done = false;

  get aborted(): boolean {
    return this.done;
  }

  /** Tells each listener once (one that throws does not keep the others from hearing). */
  abort(): void {
    if (this.done) return;
    this.done = true;
    const fns = this.fns;
    this.fns = undefined;
    for (const fn of fns ?? []) {
      try {
        fn();
      } catch {
        // A listener's own failure is its own.
      }
    }
  }

  /** Calls `fn` once when the file goes, until the returned function is called. */
  listen(fn: () => void): () => void {
    if (this.done) return () => undefined;
    const fns = (this.fns ??= new Set());
    fns.add(fn);
    return () => fns.delete(fn);
  }

  /** Listeners waiting (tests: a mount gone must leave none behind). */
  get listeners(): number {
    return this.fns?.size ?? 0;
  }
}

/**
 * Calls `fn` when `f` leaves the cache, until the returned function is
 * called (every mount using the file listens, however many). Not with
 * addEventListener's `signal` option on a mount-wide signal: each such
 * listener is another listener on that one signal, whose duplicate check
 * walks them all, so filling n files cost O(n²) (a cold read of 27k small
 * files went from 20 s to 180 s).
 */
export function whenGone(f: CachedFile, fn: () => void): () => void {
  return f.gone.listen(fn);
}
