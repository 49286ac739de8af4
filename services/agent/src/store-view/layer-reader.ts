import type { ExtentMap, StoreFileIdentity } from '@strata/client';
import { Errno, GrpcCode, StrataError, errorMessage, isStrataError } from '@strata/errors';
import type { LayerRef } from '@strata/layers';
import { LRUCache } from 'lru-cache';
import type { StoreFiles } from './store-files';
import type { StoreFd } from './store-fd';
import { HeldRunFiles, RunsFile, type RunStoreFile } from './runs-file';
import type { FileRun } from '@strata/fuse-kernel';
import type { StoreView } from './store-view';

/** Files whose maps one reader keeps (each a few windows of up to 64 MiB). */
const MAP_FILES = 4096;
/** Windows of one file kept (a file read all over keeps its most recent ones). */
const WINDOWS_PER_FILE = 64;
/** Answers asked for one read at most (a read spans one or two windows). */
const MAX_MAP_CALLS = 8;
/**
 * Other files whose maps a file's first map asks for (the resolver caps
 * this at 256): those of its directory, then of the directories after it
 * (beyondDirectory): a walk of a tree of small files asks once per this
 * many files instead of once per file, or once per directory.
 */
export const SIBLINGS = 256;
/** Calls in flight a reader waits out (each may bring its map) before asking for its file itself. */
const MAX_WAITS = 8;

/**
 * How long a map is used before it is asked for again: a revoked grant
 * stops direct reads within this, as it stops Session reads at once.
 */
export const MAP_TTL_MS = 60_000;

/** Windows a file handed to the kernel whole may take (64 GiB); a larger file is read in pieces. */
const MAX_WHOLE_WINDOWS = 1024;

/** Runs of a file handed to the session as runs (the session takes 65,536), and the store files they may name ("a few": base and snapshots). */
export const MAX_HANDED_RUNS = 65_536;
export const MAX_HANDED_RUN_FILES = 8;

/** An answer's files in the order it gave them, and whether the answer after it was asked for. */
interface AnswerOrder {
  readonly keys: readonly string[];
  continued: boolean;
}

/** Reads what a map cannot give (unmapped runs, or all of it after a refusal) from the resolver. */
export type Fallback = (offset: number, length: number) => Promise<Buffer>;

/** Whether an error of ExtentMap means the layer is never mapped (LIVE, or a resolver without the service). */
export function neverMapped(err: unknown): boolean {
  return isStrataError(err) && (err.code === GrpcCode.FAILED_PRECONDITION || err.code === GrpcCode.UNIMPLEMENTED);
}

/** A failure of the store side (a file not the one mapped, a symlink on its path, a short read, a map of another store): remembered per file. */
class Refusal extends Error {
  constructor(readonly reason: unknown) {
    super(errorMessage(reason));
  }
}

function key(path: Buffer): string {
  return path.toString('latin1');
}

/** The directory part of a key ("" for a file of the root). */
function dirOf(k: string): string {
  return k.slice(0, Math.max(0, k.lastIndexOf('/')));
}

/**
 * Reads of one sealed layer through the store view, shared by every mount
 * and file-data reader of the layer (StoreView.reader): the file's extent
 * map (asked once per window, with the maps of its directory's other small
 * files on the first, shared by concurrent readers, kept),
 * then positional reads of the store files it names, zeros for holes, and
 * the resolver for unmapped runs. Any failure — the layer cannot be mapped,
 * a store file is not the one mapped, a symlink on its path, a short read —
 * sends the read to the resolver, so a reader sees the same bytes either way.
 */
export class LayerReader {
  private readonly maps = new LRUCache<string, ExtentMap[]>({ max: MAP_FILES, ttl: MAP_TTL_MS });
  /** Where each file came in its answer's order (the file asked, then its siblings: the order a walk of the tree reads them in). */
  private readonly answerOrder = new LRUCache<string, { order: AnswerOrder; at: number }>({ max: MAP_FILES, ttl: MAP_TTL_MS });
  /** The answer after one a reader is half through, being asked for (one at a time). */
  private continuing: Promise<unknown> | undefined;
  /** Store files of runs hand-overs, opened and checked once for many files. */
  private readonly runFiles: HeldRunFiles;
  /** The resolver has answered with the next directories' maps (beyond_directory): answers go on where a walk goes next. */
  private walksBeyond = false;
  private readonly pending = new Map<string, Promise<ExtentMap>>();
  /** A first map asked with its siblings, by directory: another file of it waits for that answer before asking. */
  private readonly pendingDirs = new Map<string, Promise<ExtentMap>>();
  /** Files read through the resolver only: a refusal is not retried on every read. */
  private readonly refused = new LRUCache<string, string>({ max: MAP_FILES, ttl: MAP_TTL_MS });
  /** Why the layer is not mapped (a LIVE chain), once known, until when: the reader is shared and long-lived, the layer may be sealed since. */
  private disabledWhy: string | undefined;
  private disabledUntil = 0;

  private get disabled(): string | undefined {
    return this.disabledWhy !== undefined && Date.now() < this.disabledUntil ? this.disabledWhy : undefined;
  }

  constructor(
    private readonly view: StoreView,
    private readonly files: StoreFiles,
    private readonly layer: LayerRef,
  ) {
    this.runFiles = new HeldRunFiles((id) => this.files.openCheckedFd(id));
  }

  /** [offset, offset+length) of a file (shorter at end of file), from the store where the map allows. */
  async read(path: Buffer, offset: number, length: number, fallback: Fallback): Promise<Buffer> {
    const k = key(path);
    if (this.disabled !== undefined || this.refused.has(k)) return this.viaResolver(offset, length, fallback);
    this.reached(k);
    try {
      return await this.direct(path, k, offset, length, fallback);
    } catch (err) {
      this.failed(err, path, k);
      return this.viaResolver(offset, length, fallback);
    }
  }

  /**
   * The store file that is this file whole — one data run from its start
   * to its end, as a `dir:` layer's file is — opened beneath the store root
   * and checked against the map, for the kernel to read by itself (FUSE
   * passthrough, or the session's own preads). Undefined for any other file
   * and whenever a check fails. The caller closes it. Where the store is a
   * local filesystem it is opened, stated and closed in line: no promise,
   * FileHandle or thread-pool trip of its own (about a tenth of the CPU).
   */
  wholeFd(path: Buffer): Promise<StoreFd | undefined> {
    return this.whole(path, (id) => this.files.openCheckedFd(id));
  }

  /**
   * Up to `count` files that came after `path` in the answer that brought
   * its map (its directory's next files, then the next directories' in
   * the order a walk of the tree reads them: ExtentMapRequest
   * beyond_directory) and in the answers after it, their maps kept: what
   * a reader going through the tree reads next, to hand over ahead of it
   * across directories. Empty when the map came alone or is no longer
   * kept.
   */
  mappedAfter(path: Buffer, count: number): Buffer[] {
    const k = key(path);
    let o = this.answerOrder.get(k);
    if (o === undefined || count <= 0) return [];
    this.reached(k);
    const out: Buffer[] = [];
    // Into the answer after (its first file is this one's last), as far as `count` goes; each answer is passed once.
    for (let hops = 0; o !== undefined && out.length < count && hops <= count; hops++) {
      const { keys } = o.order;
      for (let i = o.at + 1; i < keys.length && out.length < count; i++) if (this.maps.has(keys[i])) out.push(Buffer.from(keys[i], 'latin1'));
      const next = this.answerOrder.get(keys[keys.length - 1]);
      o = next !== undefined && next.order !== o.order && next.at === 0 ? next : undefined;
    }
    return out;
  }

  /**
   * A reader came to `k`: past the middle of the answer that brought its
   * map, the answer after it is asked for behind the reader — the map of
   * the answer's last file, asked with beyond_directory, whose siblings are
   * where the walk goes next — so a reader going through the tree finds
   * the next maps kept instead of waiting for them. Only from a resolver
   * that has answered with the next directories (one that predates
   * beyond_directory would answer the same directory again).
   */
  private reached(k: string): void {
    const o = this.answerOrder.get(k);
    if (!this.walksBeyond || o === undefined || o.order.continued || this.continuing !== undefined || this.disabled !== undefined) return;
    const { keys } = o.order;
    if (2 * (keys.length - o.at) > keys.length) return;
    o.order.continued = true;
    const last = keys[keys.length - 1];
    const asking: Promise<unknown> = this.ask(Buffer.from(last, 'latin1'), last, 0, SIBLINGS)
      .catch(() => undefined)
      .finally(() => {
        if (this.continuing === asking) this.continuing = undefined;
      });
    this.continuing = asking;
  }

  /**
   * wholeFd of many files at once (a directory's next files, handed over
   * ahead of their opens): those whose maps are kept are opened together,
   * in one pass of this thread; the others wait for their maps (the first
   * one's call brings its siblings').
   */
  wholeFds(paths: readonly Buffer[]): Promise<(StoreFd | undefined)[]> {
    return Promise.all(paths.map((p) => this.wholeFd(p)));
  }

  /**
   * A file that is runs of a few store files and holes — an image layer's
   * file whose map is all DATA and HOLE runs — with those store files
   * opened beneath the store root and checked against the map as
   * wholeFd's are, for the session to serve by its own preads
   * (setFileRuns). Undefined for a file with unmapped runs (compressed,
   * encrypted: only the resolver reads them), with more than
   * MAX_HANDED_RUNS runs or MAX_HANDED_RUN_FILES store files, and whenever
   * a check fails. The store files are opened and checked once for a run
   * of such hand-overs (HeldRunFiles: the same image files, under the same
   * identity). The caller closes it.
   */
  async runsFile(path: Buffer): Promise<RunsFile | undefined> {
    const k = key(path);
    if (this.disabled !== undefined || this.refused.has(k)) return undefined;
    this.reached(k);
    const opened: RunStoreFile[] = [];
    try {
      const plan = await this.runsPlan(path, k);
      if (plan === undefined) return undefined;
      for (const id of plan.ids) {
        opened.push(
          await this.runFiles.use(id).catch((err: unknown) => {
            throw new Refusal(err);
          }),
        );
      }
      return new RunsFile(opened, plan.runs, plan.size);
    } catch (err) {
      await Promise.all(opened.map((f) => f.close().catch(() => undefined)));
      this.failed(err, path, k);
      return undefined;
    }
  }

  /** The file's runs over the store files its map names (adjacent runs of one kind merged), window after window; undefined when it cannot be handed over as runs. */
  private async runsPlan(path: Buffer, k: string): Promise<{ ids: StoreFileIdentity[]; runs: FileRun[]; size: number } | undefined> {
    const ids: StoreFileIdentity[] = [];
    const runs: FileRun[] = [];
    let size: number | undefined;
    for (let pos = 0, calls = 0; calls < MAX_WHOLE_WINDOWS; calls++) {
      const m = this.keptWindow(k, pos) ?? (await this.windowAt(path, k, pos));
      const s = m.attr?.size ?? 0;
      size ??= s;
      if (s !== size || s === 0 || m.offset !== pos || m.length === 0) return undefined;
      for (const e of m.extents) {
        if (e.offset !== pos || e.length <= 0 || e.kind === 'unmapped') return undefined;
        const last = runs[runs.length - 1];
        if (e.kind === 'hole') {
          if (last !== undefined && last.file === undefined) last.length += e.length;
          else runs.push({ offset: pos, length: e.length });
        } else {
          const f = m.files[e.file];
          if (f === undefined || e.fileOffset < 0 || e.fileOffset + e.length > f.size) return undefined;
          let i = ids.findIndex((x) => x.path === f.path && x.ino === f.ino && x.dev === f.dev && x.size === f.size && x.mtimeSec === f.mtimeSec && x.mtimeNsec === f.mtimeNsec);
          if (i < 0) {
            // The same path as another identity: the store file changed between two windows.
            if (ids.length >= MAX_HANDED_RUN_FILES || ids.some((x) => x.path === f.path)) return undefined;
            i = ids.push(f) - 1;
          }
          if (last !== undefined && last.file === i && (last.fileOffset ?? 0) + last.length === e.fileOffset) last.length += e.length;
          else runs.push({ offset: pos, length: e.length, file: i, fileOffset: e.fileOffset });
        }
        if (runs.length > MAX_HANDED_RUNS) return undefined;
        pos += e.length;
      }
      if (pos !== m.offset + m.length) return undefined;
      if (m.eof) return pos === size ? { ids, runs, size } : undefined;
    }
    return undefined;
  }

  private async whole<H>(path: Buffer, open: (id: StoreFileIdentity) => Promise<H>): Promise<H | undefined> {
    const k = key(path);
    if (this.disabled !== undefined || this.refused.has(k)) return undefined;
    this.reached(k);
    try {
      const id = await this.wholeIdentity(path, k);
      if (id === undefined) return undefined;
      return await open(id).catch((err: unknown) => {
        throw new Refusal(err);
      });
    } catch (err) {
      this.failed(err, path, k);
      return undefined;
    }
  }

  /** The store file a file's map names as the file whole, window after window (a map answers 64 MiB at most), each one run of the same store file at the same offset; undefined when it is not. */
  private async wholeIdentity(path: Buffer, k: string): Promise<StoreFileIdentity | undefined> {
    let id: StoreFileIdentity | undefined;
    for (let pos = 0, calls = 0; calls < MAX_WHOLE_WINDOWS; calls++) {
      const m = this.keptWindow(k, pos) ?? (await this.windowAt(path, k, pos));
      const size = m.attr?.size ?? 0;
      const e = m.extents[0];
      if (size === 0 || m.offset !== pos || m.length === 0 || m.extents.length !== 1 || e.kind !== 'data' || e.fileOffset !== pos || e.length !== m.length) return undefined;
      const f = m.files[e.file];
      if (f.size !== size || (id !== undefined && (f.path !== id.path || f.ino !== id.ino))) return undefined;
      id = f;
      pos += m.length;
      if (m.eof) return pos === size ? id : undefined;
    }
    return undefined;
  }

  /**
   * What a failure means from now on: a layer the resolver never maps is
   * read through it; a store file that failed a check is, for a while; any
   * other failure (no resolver answered, the map was refused) was that
   * read's alone, and the Session read says what it is.
   */
  private failed(err: unknown, path: Buffer, k: string): void {
    if (neverMapped(err)) {
      if (this.disabled === undefined) this.view.options.warn?.({ event: 'store_view.layer_not_mapped', layer: this.layer, err: errorMessage(err) }, 'layer read through the resolver');
      this.disabledWhy = errorMessage(err);
      this.disabledUntil = Date.now() + MAP_TTL_MS;
    } else if (err instanceof Refusal) {
      this.view.counters.refusals++;
      this.maps.delete(k);
      this.refused.set(k, errorMessage(err));
      this.view.options.warn?.({ event: 'store_view.refused', layer: this.layer, path: path.toString('utf8'), err: errorMessage(err) }, 'store file refused; read through the resolver');
    }
  }

  private async viaResolver(offset: number, length: number, fallback: Fallback): Promise<Buffer> {
    const data = await fallback(offset, length);
    this.view.counters.resolverBytes += data.length;
    return data;
  }

  private async direct(path: Buffer, k: string, offset: number, length: number, fallback: Fallback): Promise<Buffer> {
    let m = await this.windowAt(path, k, offset);
    const size = m.attr?.size ?? 0;
    const want = Math.max(0, Math.min(length, size - offset));
    const out = Buffer.allocUnsafe(want);
    let pos = offset;
    let unmapped = 0;
    const end = offset + want;
    for (let calls = 0; pos < end; calls++) {
      if (calls > 0) m = await this.windowAt(path, k, pos);
      if (calls >= MAX_MAP_CALLS || m.length === 0 || pos < m.offset || pos >= m.offset + m.length) throw new Refusal(StrataError.io(`extent map of ${path.toString('utf8')} does not cover ${pos}`));
      for (const e of m.extents) {
        const from = Math.max(pos, e.offset);
        const to = Math.min(end, e.offset + e.length);
        if (from >= to) continue;
        const at = from - offset;
        const n = to - from;
        if (e.kind === 'hole') out.fill(0, at, at + n);
        else if (e.kind === 'unmapped') {
          const data = await this.viaResolver(from, n, fallback);
          if (data.length !== n) throw StrataError.io(`the resolver answered ${data.length} of ${n} unmapped bytes`);
          data.copy(out, at);
          unmapped += n;
        } else {
          await this.pread(m, e.file, out, at, n, e.fileOffset + (from - e.offset));
        }
        pos = to;
      }
      if (pos < end && pos < m.offset + m.length) throw new Refusal(StrataError.io(`extent map of ${path.toString('utf8')} has a gap at ${pos}`));
    }
    this.view.counters.directBytes += want - unmapped;
    return out;
  }

  private async pread(m: ExtentMap, file: number, out: Buffer, at: number, n: number, position: number): Promise<void> {
    const id = m.files[file];
    const reading = this.files.with(id, async (fh) => {
      let done = 0;
      // Bounded: every pass reads at least one byte or stops.
      while (done < n) {
        const { bytesRead } = await fh.read(out, at + done, n - done, position + done);
        if (bytesRead === 0) throw new StrataError(Errno.ESTALE, `store file ${id.path} ends before ${position + done} (the map says ${id.size} bytes)`);
        done += bytesRead;
      }
    });
    await reading.catch((err: unknown) => {
      throw new Refusal(err);
    });
  }

  /** The kept window of the file's map holding `offset` (or the last one, at or past the end). */
  private keptWindow(k: string, offset: number): ExtentMap | undefined {
    const windows = this.maps.get(k);
    if (windows === undefined) return undefined;
    for (const w of windows) if ((offset >= w.offset && offset < w.offset + w.length) || (w.eof && offset >= w.offset + w.length && offset >= (w.attr?.size ?? 0))) return w;
    return undefined;
  }

  /** The window of the file's map holding `offset` (or the last one, at or past the end), asked for if not kept. */
  private async windowAt(path: Buffer, k: string, offset: number): Promise<ExtentMap> {
    const dir = dirOf(k);
    for (let tries = 0; tries < MAX_WAITS; tries++) {
      const kept = this.keptWindow(k, offset);
      if (kept) return kept;
      // Another reader is asking for this file, or for a sibling with this one's map in its answer.
      // ... or for the answer after the one a reader is going through (it may bring this one).
      const inflight = this.pending.get(k) ?? this.pendingDirs.get(dir) ?? (offset === 0 ? this.continuing : undefined);
      if (!inflight) break;
      await inflight.catch(() => undefined);
    }
    // A file's first window comes with its siblings' (unless one of them is being asked for already, which did not cover this one).
    const batch = offset === 0 && !this.pendingDirs.has(dir);
    // Forgotten as it settles, before any waiter resumes: the first of them to find its map missing asks anew, the others wait for that.
    const asking = this.ask(path, k, offset, batch ? SIBLINGS : 0).finally(() => {
      if (this.pending.get(k) === asking) this.pending.delete(k);
      if (this.pendingDirs.get(dir) === asking) this.pendingDirs.delete(dir);
    });
    this.pending.set(k, asking);
    if (batch) this.pendingDirs.set(dir, asking);
    return asking;
  }

  private async ask(path: Buffer, k: string, offset: number, siblings: number): Promise<ExtentMap> {
    this.view.counters.maps++;
    const beyond = siblings > 0;
    const m = await this.view.client.extentMap(this.layer, path, offset, 0, siblings, beyond);
    if (m.storeId !== this.view.storeId) {
      throw new Refusal(new StrataError(Errno.ESTALE, `a resolver answered a map of store ${m.storeId}; this view is of store ${this.view.storeId}`));
    }
    this.keep(k, m);
    const dir = dirOf(k);
    // The files this answer brought, in its order (those kept already came in an answer before, in its order).
    const order: string[] = [k];
    for (const s of m.siblings ?? []) {
      const sk = key(s.path);
      // Only files of the same store (of the same directory unless the next ones were asked for), not kept already (a kept map may hold later windows).
      if (s.map.storeId !== this.view.storeId || (!beyond && dirOf(sk) !== dir) || sk === k || this.maps.has(sk)) continue;
      if (dirOf(sk) !== dir) this.walksBeyond = true;
      this.view.counters.siblingMaps++;
      this.keep(sk, s.map);
      order.push(sk);
    }
    if (order.length > 1) {
      const o: AnswerOrder = { keys: order, continued: false };
      order.forEach((ok, at) => this.answerOrder.set(ok, { order: o, at }));
    }
    return m;
  }

  private keep(k: string, m: ExtentMap): void {
    // A window asked again (the last file of an answer, asked for the answer after it) replaces the one kept.
    const windows = (this.maps.get(k) ?? []).filter((w) => w.offset !== m.offset);
    windows.push(m.siblings === undefined ? m : { ...m, siblings: undefined });
    if (windows.length > WINDOWS_PER_FILE) windows.shift();
    this.maps.set(k, windows);
  }
}
