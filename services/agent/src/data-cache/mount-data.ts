import { closeSync, constants, writeSync } from 'node:fs';
import { GrpcCode, StrataError } from '@strata/errors';
import type { Logger } from '@strata/telemetry';
import type { FileAttrs } from './chain-identity';
import { whenGone, type CachedFile, type DiskCache, type FileOrigin } from './disk-cache';
import { ChunkSums } from './file-sum';
import { openFd, readFd, writeFd } from './fd-calls';
import { holdAnswer } from '@strata/client';

/** Where a mount's file data is served from without JavaScript (the mount's FuseSession). */
export interface FileDataSink {
  setFileData(ino: bigint, fd: number): 'passthrough' | 'pread';
  clearFileData(ino: bigint): void;
}

/** Chunk `index` (CHUNK_SIZE bytes, shorter at the end) of the file at `path`. */
export type ChunkSource = (path: Buffer, index: number) => Promise<Buffer>;

interface CommonOptions {
  cache: DiskCache;
  chunkSize: number;
  fetchChunk: ChunkSource;
  log: Logger;
  mountpoint: string;
  /** How far a fill may run ahead of its file's reader (default FILL_LEAD_BYTES; tests use less). */
  fillLeadBytes?: number;
}

/** Files named by mount and node: this mount's alone, removed at unmount, never kept across restarts. */
export interface PerMountOptions extends CommonOptions {
  /** Unique among the agent's mounts: prefixes this mount's ids in the shared cache. */
  mountKey: string;
  chainIdentity?: undefined;
}

/**
 * Files named by what their bytes are: shared by every mount of the chain,
 * kept at unmount and across agent restarts, and taken again only when the
 * resolver still reports the attributes they were filled with.
 */
export interface ChainOptions extends CommonOptions {
  /** chainIdentity() of the chain the resolver returned at mount. */
  chainIdentity: string;
  /** The file's attributes as the resolver reports them now (the mount's attribute cache). */
  stat: (path: Buffer) => Promise<FileAttrs>;
  mountKey?: string;
}

export type MountDataOptions = PerMountOptions | ChainOptions;

/** Chunks of one file fetched at once while filling it. */
const FILL_PARALLEL = 4;
/** Files filled at once per mount; more wait their turn. */
const FILLS_AT_ONCE = 4;
/** Files waiting for a fill per mount; beyond it a file is tried again at its next read. */
const MAX_QUEUED = 4096;
/**
 * Opens made before a file's registration keep reading through the agent
 * (passthrough applies to later opens): registering again at most this
 * often re-arms a registration the native cache dropped without letting
 * each such read cost a kernel ioctl.
 */
const REREGISTER_MS = 1000;

/**
 * A file an earlier agent kept is checked (its sum: a read of all of it)
 * before the read that finds it when it is at most this many chunks (16
 * MiB: some 10 ms from the page cache, against a chunk fetched from a
 * resolver per file after every restart); a larger one in the background,
 * its first reads going through the agent meanwhile.
 */
const INLINE_CHECK_CHUNKS = 16;

/**
 * Pieces written at once on the main thread: a copy into the page cache
 * costs less than a round trip through libuv's threadpool (a cold read of
 * many small files writes thousands); larger ones go to the threadpool.
 */
const SYNC_WRITE_BYTES = 128 * 1024;

/**
 * How far a fill's fetches may run ahead of the file's reader. Its chunks
 * wait in the chunk cache for the reader: run further ahead than the
 * cache holds and the reader finds them evicted and fetches them again
 * (a 1 GiB file read through the agent fetched some 300 MiB twice).
 */
export const FILL_LEAD_BYTES = 64 << 20;
/** A reader that asks nothing for this long no longer holds its fill back. */
export const READER_PAUSE_MS = 250;

/** Fills of files this large are logged at info. */
const LARGE_FILE_BYTES = 64 * 1024 * 1024;

interface Wanted {
  ino: bigint;
  path: Buffer;
  size: number;
  /** Asked for because a cached file may be reusable, not because the file is read whole: no fill if it is not. */
  reuseOnly?: boolean;
}

/** Chunk states of a file being filled. */
const TODO = 0;
const CLAIMED = 1;

/** A fill in progress: its cache file and which chunks are taken care of. */
interface ActiveFill {
  w: Wanted;
  /** The cache file's descriptor. */
  out: number;
  state: Uint8Array;
  sums?: ChunkSums;
  writes: Set<Promise<void>>;
  failed?: unknown;
}

/**
 * One sealed mount's use of the on-disk data cache. A file being read
 * whole through the agent is fetched whole in the background; once it is
 * on disk the session serves it (passthrough: the kernel reads the cache
 * file itself; else pread on native threads), and reads that still arrive
 * here (files opened before) are read from disk.
 */
export class MountData {
  private sink?: FileDataSink;
  private readonly queued = new Map<bigint, Wanted>();
  private readonly filling = new Set<bigint>();
  /** Fills in progress by file key (latin1 of the path, as the chunk tap names files). */
  private readonly active = new Map<string, ActiveFill>();
  private readonly registeredAt = new Map<bigint, number>();
  /** Where each large file's last read through the agent ended (is it being read in order?). */
  private readonly lastEnd = new Map<bigint, number>();
  /** Fill fetches waiting for their file's reader to move on, by node. */
  private readonly waiting = new Map<bigint, Array<() => void>>();
  /** Files whose fill failed for a reason other than an outage are not tried again while the mount lives. */
  private readonly gaveUp = new Set<bigint>();
  private refused = false;
  private closed = false;
  /** Chain mode: the cache id of each node this mount filled or took (its path is only known at a read). */
  private readonly ids = new Map<bigint, string>();
  /** Fills in progress by node: at unmount they stop and leave the cache. */
  private readonly inFill = new Map<bigint, CachedFile>();
  /** This mount's listener on each file it uses leaving the cache, by node: removed at unmount (the files outlive it). */
  private readonly listening = new Map<bigint, () => void>();

  constructor(private readonly o: MountDataOptions) {}

  /** forget(ino) once f leaves the cache; one listener per node, the last file's. */
  private followGone(ino: bigint, id: string, f: CachedFile): void {
    this.listening.get(ino)?.();
    const stop = whenGone(f, () => {
      if (this.listening.get(ino) === stop) this.listening.delete(ino);
      this.forget(ino, id);
    });
    this.listening.set(ino, stop);
  }

  attach(sink: FileDataSink): void {
    this.sink = sink;
  }

  private get chain(): ChainOptions | undefined {
    return this.o.chainIdentity !== undefined ? this.o : undefined;
  }

  /** The id ino's file is cached under, if this mount knows it. */
  private idOf(ino: bigint): string | undefined {
    return this.o.chainIdentity !== undefined ? this.ids.get(ino) : `${this.o.mountKey}\0${ino}`;
  }

  /** The id a file would be cached under. */
  private idFor(ino: bigint, path: Buffer): string {
    return this.o.chainIdentity !== undefined ? `${this.o.chainIdentity}\0${path.toString('latin1')}` : `${this.o.mountKey}\0${ino}`;
  }

  /** ino's cache file when it may be served: whole, and checked if an earlier agent left it. */
  private served(ino: bigint): CachedFile | undefined {
    if (this.closed) return undefined;
    const id = this.idOf(ino);
    const f = id === undefined ? undefined : this.o.cache.get(id);
    return f?.ready === true && f.unverified !== true ? f : undefined;
  }

  /** Whether ino's file is on disk whole (reads of it that still arrive are read from there). */
  holds(ino: bigint): boolean {
    return this.served(ino) !== undefined;
  }

  /** [pos, pos+len) of ino's file from disk; undefined when it is not (or no longer) cached whole. */
  async read(ino: bigint, into: Buffer, pos: number, len: number): Promise<number | undefined> {
    const f = this.served(ino);
    if (f === undefined) return undefined;
    this.rearm(ino, f);
    const n = await readFrom(f, into, pos, len);
    if (n !== undefined) this.o.cache.diskRead();
    // Removed under the agent: it goes from the cache too, so the next read fills it again.
    else this.o.cache.discard(f.id, f);
    return n;
  }

  /**
   * [pos, pos+len) of ino's file from the disk cache, if it is there: a
   * file this mount holds, or one another mount of the chain or an earlier
   * agent kept, taken at once when checking it is cheap (checked already
   * in this agent, or at most INLINE_CHECK_CHUNKS). A larger file left by
   * an earlier agent is checked in the background; this read, like any
   * that finds nothing, is the caller's (undefined).
   */
  async readCached(ino: bigint, path: Buffer, pos: number, len: number): Promise<Buffer | undefined> {
    if (!this.holds(ino) && !(await this.takeKept(ino, path))) return undefined;
    const into = Buffer.allocUnsafe(len);
    const n = await this.read(ino, into, pos, len);
    return n === undefined ? undefined : into.subarray(0, n);
  }

  private async takeKept(ino: bigint, path: Buffer): Promise<boolean> {
    const chain = this.chain;
    if (chain === undefined || this.closed || this.filling.has(ino) || this.queued.has(ino) || this.gaveUp.has(ino)) return false;
    const id = this.idFor(ino, path);
    const f = this.o.cache.peek(id);
    if (f === undefined || !f.ready || this.ids.get(ino) === id) return false;
    if (f.unverified === true && f.size > INLINE_CHECK_CHUNKS * this.o.chunkSize) {
      this.want({ ino, path, size: f.size, reuseOnly: true });
      return false;
    }
    // Counted as a fill: reads meanwhile do not start another.
    this.filling.add(ino);
    try {
      const origin = await this.originOf({ ino, path, size: f.size });
      return origin !== undefined && (await this.reuse({ ino, path, size: f.size }, origin)) && this.holds(ino);
    } catch {
      // The resolver's stat failed: the caller's read will say why.
      return false;
    } finally {
      this.filling.delete(ino);
      this.next();
    }
  }

  /**
   * A read served from elsewhere: a file another mount of the chain (or an
   * earlier agent) cached is taken once checked; otherwise the whole
   * file's fill starts when it is being read whole.
   */
  noteRead(ino: bigint, path: Buffer, size: number, pos: number, len: number): void {
    if (this.filling.has(ino) && size > this.o.chunkSize) this.readerAt(ino, pos + len);
    if (this.closed || this.filling.has(ino) || this.queued.has(ino) || this.gaveUp.has(ino) || !this.o.cache.takes(size)) return;
    const id = this.idFor(ino, path);
    const cached = this.o.cache.peek(id);
    if (cached !== undefined) {
      // Ready and not yet this node's: check and take it. Not ready: someone is filling it; a later read takes it.
      // If it is found changed, a file being read whole is filled at once.
      if (this.chain && cached.ready && this.ids.get(ino) !== id) this.want({ ino, path, size, reuseOnly: !this.readWhole(ino, size, pos, len) });
      return;
    }
    if (this.readWhole(ino, size, pos, len)) this.want({ ino, path, size });
  }

  /**
   * Whether a file is being read whole, so fetching all of it now is
   * readahead rather than waste: a file of one chunk (its bytes are fetched
   * for this read anyway), or a read continuing where the last one ended.
   * Random reads of a large file are left to the chunk cache: fetching
   * gigabytes behind a reader who wants a few blocks would slow it down.
   */
  private readWhole(ino: bigint, size: number, pos: number, len: number): boolean {
    if (size <= this.o.chunkSize) return true;
    const continues = this.lastEnd.get(ino) === pos;
    this.readerAt(ino, pos + len);
    return continues;
  }

  /** Where the reader of a large file got to: its fill's fetches waiting for it go on (nearReader). */
  private readerAt(ino: bigint, end: number): void {
    if (this.lastEnd.size >= MAX_QUEUED) this.lastEnd.clear();
    this.lastEnd.set(ino, end);
    const waiting = this.waiting.get(ino);
    if (waiting) {
      this.waiting.delete(ino);
      for (const go of waiting) go();
    }
  }

  private want(w: Wanted): void {
    if (this.filling.size < FILLS_AT_ONCE) {
      void this.fill(w);
      return;
    }
    if (this.queued.size < MAX_QUEUED) this.queued.set(w.ino, w);
  }

  private next(): void {
    while (!this.closed && this.filling.size < FILLS_AT_ONCE && this.queued.size > 0) {
      const [ino, w] = this.queued.entries().next().value as [bigint, Wanted];
      this.queued.delete(ino);
      void this.fill(w);
    }
  }

  private async fill(w: Wanted): Promise<void> {
    this.filling.add(w.ino);
    try {
      const origin = await this.originOf(w);
      if (this.closed || (origin !== undefined && (await this.reuse(w, origin)))) return;
      if (w.reuseOnly === true) return;
      await this.fetchWhole(w, origin);
    } catch (err) {
      // Only the resolver's stat of the file gets here; the fill's own failures are handled in fetchWhole.
      this.o.log.debug({ event: 'agent.data_cache.stat_failed', mountpoint: this.o.mountpoint, ino: String(w.ino), err: StrataError.from(err).message }, 'file not cached; read through the agent');
    } finally {
      this.filling.delete(w.ino);
      this.next();
    }
  }

  /** Chain mode: what the file is now, recorded with its fill and checked before reuse. */
  private async originOf(w: Wanted): Promise<FileOrigin | undefined> {
    const chain = this.chain;
    if (chain === undefined) return undefined;
    const attrs = await chain.stat(w.path);
    return { attrs, chunkSize: this.o.chunkSize };
  }

  /**
   * Takes the cached file of w's path if there is one and it is still the
   * file (a mismatch removes it); true when nothing more is to be done
   * (taken, or being filled by another mount of the chain).
   */
  private async reuse(w: Wanted, origin: FileOrigin): Promise<boolean> {
    const id = this.idFor(w.ino, w.path);
    const f = this.o.cache.peek(id);
    if (f === undefined) return false;
    if (!f.ready) return true;
    if (!(await this.o.cache.reuse(id, f, origin.attrs))) return false;
    if (this.closed) return true;
    this.ids.set(w.ino, id);
    this.followGone(w.ino, id, f);
    let fd: number;
    try {
      fd = await openFd(f.file, constants.O_RDONLY);
    } catch {
      // Removed under the agent since the check.
      this.o.cache.discard(id, f);
      return false;
    }
    try {
      if (!f.gone.aborted) this.handOver(w.ino, fd);
    } finally {
      closeQuietly(fd);
    }
    return true;
  }

  private async fetchWhole(w: Wanted, origin: FileOrigin | undefined): Promise<void> {
    const id = this.idFor(w.ino, w.path);
    // Another mount of the chain started it meanwhile; or the resolver's size is not the one the read saw (the next read decides).
    if (this.o.cache.peek(id) !== undefined || (origin !== undefined && origin.attrs.size !== w.size)) return;
    const f = this.o.cache.reserve(id, w.size, origin);
    this.inFill.set(w.ino, f);
    if (this.chain) this.ids.set(w.ino, id);
    this.followGone(w.ino, id, f);
    const started = performance.now();
    try {
      const out = this.o.cache.create(f);
      let owned = true;
      try {
        const sum = await this.copyIn(w, f, out);
        if (f.gone.aborted || this.closed) {
          this.o.cache.discard(id, f);
          return;
        }
        this.o.cache.filled(f);
        // Handed over, then synced and closed by seal, on the fd just written: no second open per file (a cold read of many small files fills thousands).
        this.handOver(w.ino, out);
        owned = false;
        this.o.cache.seal(f, sum, out);
      } finally {
        if (owned) closeQuietly(out);
      }
      // One line per large file is worth an operator's attention (where a 1 GiB read went); small ones are many (not even built unless asked for).
      const large = w.size >= LARGE_FILE_BYTES;
      if (large || this.o.log.isLevelEnabled('debug')) {
        const line = { event: 'agent.data_cache.filled', mountpoint: this.o.mountpoint, path: w.path.toString('utf8'), bytes: w.size, ms: Math.round(performance.now() - started) };
        if (large) this.o.log.info(line, 'file cached on disk');
        else this.o.log.debug(line, 'file cached on disk');
      }
    } catch (err) {
      this.o.cache.failed(id, f);
      const e = StrataError.from(err);
      if (!e.retryable && e.code !== GrpcCode.DEADLINE_EXCEEDED) {
        if (this.gaveUp.size >= MAX_QUEUED) this.gaveUp.clear();
        this.gaveUp.add(w.ino);
      }
      if (!this.closed && !f.gone.aborted) {
        this.o.log.debug({ event: 'agent.data_cache.fill_failed', mountpoint: this.o.mountpoint, ino: String(w.ino), err: e.message }, 'file not cached; read through the agent');
      }
    } finally {
      this.inFill.delete(w.ino);
    }
  }

  /**
   * The whole file into its cache file: chunks that readers fetch meanwhile
   * are written as they arrive (chunkFetched), the rest fetched a few at a
   * time from the lowest one nobody took yet. A chunk of the wrong length
   * means the file is not the one it was. Returns the bytes' sum when the
   * file may be kept across restarts.
   */
  private async copyIn(w: Wanted, f: CachedFile, out: number): Promise<number | undefined> {
    const chunks = Math.ceil(w.size / this.o.chunkSize);
    // One chunk (most files): the read that asked for the fill fetched it, the chunk cache has it; no other reader's fetch to share.
    if (chunks === 1) {
      const b = await this.o.fetchChunk(w.path, 0);
      this.checkLength(w, 0, b);
      const release = holdAnswer(b);
      try {
        await writeAt(out, b, 0);
      } finally {
        release();
      }
      if (!f.origin) return undefined;
      const sums = new ChunkSums(w.size, this.o.chunkSize);
      sums.add(0, b);
      return sums.total();
    }
    const a: ActiveFill = { w, out, state: new Uint8Array(chunks), writes: new Set(), ...(f.origin ? { sums: new ChunkSums(w.size, this.o.chunkSize) } : {}) };
    const key = w.path.toString('latin1');
    this.active.set(key, a);
    try {
      let cursor = 0;
      const worker = async (): Promise<void> => {
        for (;;) {
          while (cursor < chunks && a.state[cursor] !== TODO) cursor++;
          if (cursor >= chunks || f.gone.aborted || a.failed !== undefined) return;
          const i = cursor;
          await this.nearReader(w.ino, i);
          // A reader's fetch may have claimed it meanwhile, or another of these workers.
          if (f.gone.aborted || a.failed !== undefined) return;
          if (a.state[i] !== TODO) continue;
          a.state[i] = CLAIMED;
          const b = await this.o.fetchChunk(w.path, i);
          // The chunk cache may evict it while its write is on the threadpool: held until written.
          const release = holdAnswer(b);
          try {
            this.checkLength(w, i, b);
            a.sums?.add(i, b);
            await writeAt(out, b, i * this.o.chunkSize);
          } finally {
            release();
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(FILL_PARALLEL, chunks) }, worker));
      await Promise.all([...a.writes]);
      if (a.failed !== undefined) throw a.failed;
      return a.sums?.total();
    } finally {
      this.active.delete(key);
    }
  }

  /**
   * Until chunk `index` is within FILL_LEAD_BYTES of where the file's
   * reader is (or there is none, or it paused): bounded, each pass waits
   * for the reader's next read or READER_PAUSE_MS.
   */
  private async nearReader(ino: bigint, index: number): Promise<void> {
    // Bounded: each pass waits for the reader to get further than before, or ends.
    for (let end = this.lastEnd.get(ino); end !== undefined && !this.closed && index * this.o.chunkSize >= end + (this.o.fillLeadBytes ?? FILL_LEAD_BYTES); ) {
      await new Promise<void>((resolve) => {
        let list = this.waiting.get(ino);
        if (!list) this.waiting.set(ino, (list = []));
        const waiters = list;
        const go = (): void => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          const at = waiters.indexOf(go);
          if (at >= 0) waiters.splice(at, 1);
          if (waiters.length === 0 && this.waiting.get(ino) === waiters) this.waiting.delete(ino);
          resolve();
        }, READER_PAUSE_MS);
        waiters.push(go);
      });
      const now = this.lastEnd.get(ino);
      if (now === undefined) return;
      if (now <= end) {
        // Paused (or gone back): it holds the fill back no more, until it reads on (readerAt).
        if (this.lastEnd.get(ino) === end) this.lastEnd.delete(ino);
        return;
      }
      end = now;
    }
  }

  private checkLength(w: Wanted, index: number, b: Buffer): void {
    const want = Math.min(this.o.chunkSize, w.size - index * this.o.chunkSize);
    if (b.length !== want) throw StrataError.corrupt(`chunk ${index} has ${b.length} bytes, expected ${want}: the file changed`);
  }

  /** A chunk a reader fetched: written into its file's fill if that one still needs it. */
  chunkFetched(key: string, index: number, data: Buffer): void {
    const a = this.active.get(key);
    if (!a || index >= a.state.length || a.state[index] !== TODO) return;
    a.state[index] = CLAIMED;
    const release = holdAnswer(data);
    const p = (async () => {
      this.checkLength(a.w, index, data);
      a.sums?.add(index, data);
      await writeAt(a.out, data, index * this.o.chunkSize);
    })()
      .catch((err: unknown) => {
        a.failed ??= err;
      })
      .finally(release);
    a.writes.add(p);
    void p.finally(() => a.writes.delete(p));
  }

  /** setFileData, once per file unless it must be re-armed; a refusal turns hand-overs off for the mount. */
  private handOver(ino: bigint, fd: number): void {
    const sink = this.sink;
    if (!sink || this.refused || this.closed) return;
    this.registeredAt.set(ino, performance.now());
    try {
      sink.setFileData(ino, fd);
    } catch (err) {
      // Passthrough refused after INIT agreed to it (a kernel that wants more privilege): reads keep coming here, from disk.
      this.refused = true;
      this.o.log.warn({ event: 'agent.data_cache.register_failed', mountpoint: this.o.mountpoint, err: StrataError.from(err).message }, 'cached files are read through the agent');
    }
  }

  /** Hands a cached file to the session again when its last hand-over is old (the native cache may have dropped it). */
  private rearm(ino: bigint, f: CachedFile): void {
    if (!this.sink || this.refused || this.closed) return;
    if (performance.now() - (this.registeredAt.get(ino) ?? -Infinity) < REREGISTER_MS) return;
    this.registeredAt.set(ino, performance.now());
    void openFd(f.file, constants.O_RDONLY).then(
      (fd) => {
        try {
          if (!f.gone.aborted) this.handOver(ino, fd);
        } finally {
          closeQuietly(fd);
        }
      },
      () => this.registeredAt.delete(ino),
    );
  }

  /** ino's cache file is gone (evicted, found changed, removed): reads come here again. */
  private forget(ino: bigint, id: string): void {
    if (this.ids.get(ino) === id) this.ids.delete(ino);
    this.unregister(ino);
  }

  private unregister(ino: bigint): void {
    this.registeredAt.delete(ino);
    if (this.closed) return;
    try {
      this.sink?.clearFileData(ino);
    } catch {
      // The session ended first: nothing left to clear.
    }
  }

  /**
   * At unmount: pending fills stop and leave the cache. A per-mount cache's
   * files go with it; a chain's stay for its other and later mounts.
   */
  dispose(): void {
    this.closed = true;
    this.queued.clear();
    this.sink = undefined;
    for (const stop of this.listening.values()) stop();
    this.listening.clear();
    for (const f of this.inFill.values()) this.o.cache.discard(f.id, f);
    this.inFill.clear();
    this.ids.clear();
    if (this.o.chainIdentity === undefined) this.o.cache.drop(`${this.o.mountKey}\0`);
  }
}

/** All of `b` at `pos` of the file open as `fd`. */
async function writeAt(fd: number, b: Buffer, pos: number): Promise<void> {
  // Bounded: each pass writes at least one byte or throws.
  for (let done = 0; done < b.length; ) {
    const n = b.length - done <= SYNC_WRITE_BYTES ? writeSync(fd, b, done, b.length - done, pos + done) : await writeFd(fd, b, done, b.length - done, pos + done);
    if (n <= 0) throw StrataError.io(`writing the cache file: ${n} bytes written`);
    done += n;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // A descriptor of our own: nothing to do about a failed close (the sum is checked before any reuse).
  }
}

/** [pos, pos+len) of a cached file; undefined when it was evicted meanwhile. */
async function readFrom(f: CachedFile, into: Buffer, pos: number, len: number): Promise<number | undefined> {
  let fd: number;
  try {
    fd = await openFd(f.file, constants.O_RDONLY);
  } catch {
    return undefined;
  }
  try {
    return await readFd(fd, into, 0, Math.max(0, Math.min(len, f.size - pos)), pos);
  } finally {
    closeQuietly(fd);
  }
}
