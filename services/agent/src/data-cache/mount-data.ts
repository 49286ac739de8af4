import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { GrpcCode, StrataError } from '@strata/errors';
import type { Logger } from '@strata/telemetry';
import type { CachedFile, DiskCache } from './disk-cache';

/** Where a mount's file data is served from without JavaScript (the mount's FuseSession). */
export interface FileDataSink {
  setFileData(ino: bigint, fd: number): 'passthrough' | 'pread';
  clearFileData(ino: bigint): void;
}

/** Chunk `index` (CHUNK_SIZE bytes, shorter at the end) of the file at `path`. */
export type ChunkSource = (path: Buffer, index: number) => Promise<Buffer>;

export interface MountDataOptions {
  cache: DiskCache;
  /** Unique among the agent's mounts: prefixes this mount's ids in the shared cache. */
  mountKey: string;
  chunkSize: number;
  fetchChunk: ChunkSource;
  log: Logger;
  mountpoint: string;
}

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

/** Fills of files this large are logged at info. */
const LARGE_FILE_BYTES = 64 * 1024 * 1024;

interface Wanted {
  ino: bigint;
  path: Buffer;
  size: number;
}

/** Chunk states of a file being filled. */
const TODO = 0;
const CLAIMED = 1;

/** A fill in progress: its cache file and which chunks are taken care of. */
interface ActiveFill {
  w: Wanted;
  out: FileHandle;
  state: Uint8Array;
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
  /** Files whose fill failed for a reason other than an outage are not tried again while the mount lives. */
  private readonly gaveUp = new Set<bigint>();
  private refused = false;
  private closed = false;

  constructor(private readonly o: MountDataOptions) {}

  attach(sink: FileDataSink): void {
    this.sink = sink;
  }

  private id(ino: bigint): string {
    return `${this.o.mountKey}\0${ino}`;
  }

  /** Whether ino's file is on disk whole (reads of it that still arrive are read from there). */
  holds(ino: bigint): boolean {
    return !this.closed && this.o.cache.get(this.id(ino))?.ready === true;
  }

  /** [pos, pos+len) of ino's file from disk; undefined when it is not (or no longer) cached whole. */
  async read(ino: bigint, into: Buffer, pos: number, len: number): Promise<number | undefined> {
    if (this.closed) return undefined;
    const f = this.o.cache.get(this.id(ino));
    if (!f?.ready) return undefined;
    this.rearm(ino, f);
    const n = await readFrom(f, into, pos, len);
    if (n !== undefined) this.o.cache.diskRead();
    return n;
  }

  /** A read served from elsewhere: the whole file's fill starts when it is being read whole. */
  noteRead(ino: bigint, path: Buffer, size: number, pos: number, len: number): void {
    if (this.closed || this.filling.has(ino) || this.queued.has(ino) || this.gaveUp.has(ino) || !this.o.cache.takes(size)) return;
    if (this.o.cache.get(this.id(ino)) !== undefined) return;
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
    if (this.lastEnd.size >= MAX_QUEUED) this.lastEnd.clear();
    this.lastEnd.set(ino, pos + len);
    return continues;
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
    const id = this.id(w.ino);
    this.filling.add(w.ino);
    const f = this.o.cache.reserve(id, w.size);
    f.gone.signal.addEventListener('abort', () => this.unregister(w.ino), { once: true });
    const started = performance.now();
    try {
      const out = await fs.open(f.file, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR, 0o600);
      try {
        await this.copyIn(w, f, out);
        if (f.gone.signal.aborted || this.closed) return;
        this.o.cache.filled(f);
        // Handed over on the fd just written: no second open per file (a cold read of many small files fills thousands).
        this.handOver(w.ino, out.fd);
      } finally {
        await out.close();
      }
      // One line per large file is worth an operator's attention (where a 1 GiB read went); small ones are many.
      const line = { event: 'agent.data_cache.filled', mountpoint: this.o.mountpoint, path: w.path.toString('utf8'), bytes: w.size, ms: Math.round(performance.now() - started) };
      if (w.size >= LARGE_FILE_BYTES) this.o.log.info(line, 'file cached on disk');
      else this.o.log.debug(line, 'file cached on disk');
    } catch (err) {
      this.o.cache.failed(id, f);
      const e = StrataError.from(err);
      if (!e.retryable && e.code !== GrpcCode.DEADLINE_EXCEEDED) {
        if (this.gaveUp.size >= MAX_QUEUED) this.gaveUp.clear();
        this.gaveUp.add(w.ino);
      }
      if (!this.closed && !f.gone.signal.aborted) {
        this.o.log.debug({ event: 'agent.data_cache.fill_failed', mountpoint: this.o.mountpoint, ino: String(w.ino), err: e.message }, 'file not cached; read through the agent');
      }
    } finally {
      this.filling.delete(w.ino);
      this.next();
    }
  }

  /**
   * The whole file into its cache file: chunks that readers fetch meanwhile
   * are written as they arrive (chunkFetched), the rest fetched a few at a
   * time from the lowest one nobody took yet. A chunk of the wrong length
   * means the file is not the one it was.
   */
  private async copyIn(w: Wanted, f: CachedFile, out: FileHandle): Promise<void> {
    const chunks = Math.ceil(w.size / this.o.chunkSize);
    const a: ActiveFill = { w, out, state: new Uint8Array(chunks), writes: new Set() };
    const key = w.path.toString('latin1');
    this.active.set(key, a);
    try {
      let cursor = 0;
      const worker = async (): Promise<void> => {
        for (;;) {
          while (cursor < chunks && a.state[cursor] !== TODO) cursor++;
          if (cursor >= chunks || f.gone.signal.aborted || a.failed !== undefined) return;
          const i = cursor;
          a.state[i] = CLAIMED;
          const b = await this.o.fetchChunk(w.path, i);
          this.checkLength(w, i, b);
          await out.write(b, 0, b.length, i * this.o.chunkSize);
        }
      };
      await Promise.all(Array.from({ length: Math.min(FILL_PARALLEL, chunks) }, worker));
      await Promise.all([...a.writes]);
      if (a.failed !== undefined) throw a.failed;
    } finally {
      this.active.delete(key);
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
    const p = (async () => {
      this.checkLength(a.w, index, data);
      await a.out.write(data, 0, data.length, index * this.o.chunkSize);
    })().catch((err: unknown) => {
      a.failed ??= err;
    });
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
    void fs.open(f.file, constants.O_RDONLY).then(
      async (h) => {
        try {
          if (!f.gone.signal.aborted) this.handOver(ino, h.fd);
        } finally {
          await h.close();
        }
      },
      () => this.registeredAt.delete(ino),
    );
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

  /** At unmount: pending fills stop, this mount's files leave the cache. */
  dispose(): void {
    this.closed = true;
    this.queued.clear();
    this.sink = undefined;
    this.o.cache.drop(`${this.o.mountKey}\0`);
  }
}

/** [pos, pos+len) of a cached file; undefined when it was evicted meanwhile. */
async function readFrom(f: CachedFile, into: Buffer, pos: number, len: number): Promise<number | undefined> {
  let h: FileHandle;
  try {
    h = await fs.open(f.file, constants.O_RDONLY);
  } catch {
    return undefined;
  }
  try {
    const { bytesRead } = await h.read(into, 0, Math.max(0, Math.min(len, f.size - pos)), pos);
    return bytesRead;
  } finally {
    await h.close();
  }
}
