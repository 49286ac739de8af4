import { Errno, StrataError } from '@strata/errors';
import { isRegMode } from '@strata/posix';
import type { Entry, FileRun, FuseHandlers, LinkAnswer, Listing, AttrAnswer, StatFs } from '@strata/fuse-kernel';
import type { Attr, DirEntry } from '@strata/protocol';
import type { MountData } from '../data-cache/mount-data';
import type { MountFs } from '../mount/mount-fs';
import type { OpTracker } from '../observability/op-tracker';
import { sortedIndexOf } from '../mount/listing-cache';
import { baseName, childKey, keyOf, parentKey, pathOf } from '../mount/tree-path';
import { kernelAttr, kernelEntries, kernelStatfs } from './attr';
import type { NodeTable } from './node-table';

/** How long answers are kept: by the kernel (seconds) and by the session's native cache (seconds; Infinity: sealed). */
export interface AnswerLifetimes {
  kernelSeconds: number;
  cacheTtl: number;
}

/** Where whole answers go to be served natively from then on (the mount's FuseSession). */
export interface NativeCacheSink {
  cacheXattrs(ino: bigint, xattrs: ReadonlyArray<readonly [Buffer, Buffer]>): void;
  /**
   * Serves ino's data from the file open at fd without JavaScript (FUSE
   * passthrough, or the session's own preads), as FuseSession.setFileData
   * does; undefined when there is no session (yet). Absent: never.
   */
  setFileData?(ino: bigint, fd: number): 'passthrough' | 'pread' | undefined;
  /**
   * Serves ino's data, runs of the files open at fds and holes, by the
   * session's own preads, as FuseSession.setFileRuns does; false when there
   * is no session (yet). Absent: never (such files are read here).
   */
  setFileRuns?(ino: bigint, fds: readonly number[], runs: readonly FileRun[], size: number): boolean;
}

/** Store files that are a layer file whole, checked (the mount's store-view reader, sealed mounts only). */
export interface WholeFiles {
  wholeFd(path: Buffer): Promise<WholeFile | undefined>;
  /** The store files a file is runs of (an image layer's file), checked; undefined when it is not such a file. Absent: never. */
  runsFile?(path: Buffer): Promise<RunsOfFiles | undefined>;
  /**
   * Up to `count` files whose maps came after this one's, in the order a
   * walk of the tree reads them (its directory's next files, then the next
   * directories'; LayerReader.mappedAfter); empty when not known. Absent: never.
   */
  mappedAfter?(path: Buffer, count: number): Buffer[];
}

/** A file as runs of store files open for a hand-over (and its reads until then). */
export interface RunsOfFiles {
  readonly fds: readonly number[];
  readonly runs: readonly FileRun[];
  readonly size: number;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/** What a hand-over leaves to read the READs on their way before it from. */
type Handed = Pick<WholeFile, 'read' | 'close'>;

/** A store file open for a hand-over: its descriptor (given to the session), reads until then, and its close. */
export interface WholeFile {
  readonly fd: number;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/** The FUSE handlers of a mount, and what the mount tells them besides requests. */
export interface KernelHandlers extends FuseHandlers {
  /**
   * The listing of the directory at `dirKey` is known (the prefetch walk
   * completed it, or the mount asked it): its large regular files are
   * handed over ahead of their first READ where the kernel opens files
   * (bounded: LARGE_FILE, LARGE_MAX). Nothing otherwise.
   */
  listed(dirKey: string, entries: readonly DirEntry[]): void;
  /**
   * No large file is handed over ahead until `settled` settles (the mount's
   * prefetch walk): mapping a large image file beside the walk slowed a cold
   * `find` of the vm-image guest by ~250 ms (300 → 500–700 ms). Those named
   * meanwhile wait in the queue; a READ hands its file over at once as ever,
   * and so does a LOOKUP of a large file (a walk's entries come by
   * READDIRPLUS, so a lookup is a user naming that file, about to open it).
   */
  holdLargeUntil(settled: Promise<unknown>): void;
}

/** How the mount's files are opened: through the session (OPEN asked each time), or by the kernel itself (FUSE no_open). */
export interface HandlerModes {
  /**
   * The kernel opens files itself (the session's kernelOpens): no OPEN
   * reaches the session, so a store view's files are handed over at their
   * first READ (served by pread from then on), and the directory's next
   * files behind it.
   */
  kernelOpens?: boolean;
}

/** Files not handed to the kernel whole, remembered so that their reads do not ask again (cleared when full). */
const NOT_WHOLE_MAX = 65_536;
/**
 * A file handed over is not handed over again for this long: by
 * passthrough, files opened before still send their READs here (only later
 * opens are the kernel's), and those must not register it again each time.
 * After it, a READ here means the session let the registration go.
 */
const HANDED_OVER_MS = 60_000;
/**
 * Served by the session's pread, every READ of a registered file is the
 * session's (files opened before included): one that still comes here a
 * little after the hand-over means the registration was let go (the
 * session's bound on pread files), and the file is handed over again.
 */
const HANDED_OVER_PREAD_MS = 1_000;
/** Files of a directory handed over ahead of their opens behind one hand-over, and directories walked so at once. */
const AHEAD = 32;
const AHEAD_DIRS = 8;
/** Files handed over ahead behind one hand-over where the store view knows the walk's next files (across directories). */
const AHEAD_MAPPED = 128;
/**
 * Where the kernel opens files, a regular file at least this large is
 * handed over as soon as a listing or a lookup names it, not at its first
 * READ: a big file's first READ otherwise waits for its map (a resolver
 * call, perhaps behind a mount's prefetch walk) inside its reader's clock,
 * and a cold random read of it pays that wait once for all its reads.
 */
export const LARGE_FILE = 1 << 20;
/**
 * Nor larger than this ahead: an image layer's file is mapped window by
 * window (64 MiB each) before it can be handed over, so a huge one would
 * cost a long run of map calls for a file perhaps never read; it is handed
 * over at its first READ, as before.
 */
export const LARGE_AHEAD_MAX_BYTES = 8 * 2 ** 30;
/**
 * Large files handed over ahead at once, waiting their turn, and in all
 * (per mount): each costs a map and holds a descriptor of the session's
 * bounded pread set, so a tree of many big files is not all mapped ahead —
 * past these they are handed over at their first READ, as other files are.
 */
const LARGE_AT_ONCE = 2;
const LARGE_QUEUED = 64;
const LARGE_MAX = 256;

/** An xattr name as the protocol carries it (text); a name that is not UTF-8 cannot exist on a layer served through it. */
function xattrName(name: Buffer): string | undefined {
  const s = name.toString('utf8');
  return Buffer.from(s, 'utf8').equals(name) ? s : undefined;
}

/**
 * The FUSE handlers of one mount over its MountFs. The session calls them
 * only for what its native cache does not hold; every answer carries how
 * long the native side may answer it again by itself, so a second ask of
 * the same thing never reaches this thread while the layer is sealed.
 * Names, link targets and xattr values stay bytes throughout.
 */
export function kernelHandlers(
  fs: MountFs,
  nodes: NodeTable,
  t: OpTracker,
  life: AnswerLifetimes,
  native?: NativeCacheSink,
  data?: MountData,
  whole?: WholeFiles,
  modes: HandlerModes = {},
): KernelHandlers {
  const timeouts = { entryTimeout: life.kernelSeconds, attrTimeout: life.kernelSeconds, cacheTtl: life.cacheTtl };
  const notWhole = new Set<bigint>();
  /** Hand-overs under way, with how many callers use their handle. */
  const handing = new Map<bigint, { handle: Promise<Handed | undefined>; users: number }>();
  /** When each file was handed over, and whether the session serves it by pread (see HANDED_OVER_MS). */
  const handedOver = new Map<bigint, { at: number; pread: boolean }>();
  /** Records ino as handed over now (the map bounded as notWhole is). */
  const markHandedOver = (ino: bigint, pread: boolean): void => {
    if (handedOver.size >= NOT_WHOLE_MAX) handedOver.clear();
    handedOver.set(ino, { at: performance.now(), pread });
  };
  /** Whether ino was handed over less than ms ago. */
  const handedWithin = (ino: bigint, ms: (pread: boolean) => number): boolean => {
    const h = handedOver.get(ino);
    return h !== undefined && performance.now() - h.at < ms(h.pread);
  };

  /**
   * With a store view: a sealed file that is one store file whole (a `dir:`
   * layer's file) is handed to the session, which serves every later READ
   * of it without JavaScript — the kernel itself by FUSE passthrough where
   * negotiated. The handle is checked against the resolver's map first and
   * closed here (the session keeps its own). Concurrent first reads share
   * one attempt; a file that cannot be handed over is read as before.
   */
  async function handOver(ino: bigint, path: Buffer): Promise<Handed | undefined> {
    if (!whole || !native?.setFileData || notWhole.has(ino)) return undefined;
    if (handedWithin(ino, (pread) => (pread ? HANDED_OVER_PREAD_MS : HANDED_OVER_MS))) return undefined;
    const fh = await whole.wholeFd(path);
    let mode: 'passthrough' | 'pread' | undefined;
    try {
      mode = fh ? native.setFileData(ino, fh.fd) : undefined;
    } catch {
      mode = undefined;
    }
    if (mode === undefined) {
      await fh?.close().catch(() => undefined);
      // Not one store file whole: runs of a few (an image layer's file), served by the session's preads too.
      const runs = fh === undefined ? await handOverRuns(ino, path) : undefined;
      if (runs !== undefined) return runs;
      if (notWhole.size >= NOT_WHOLE_MAX) notWhole.clear();
      notWhole.add(ino);
      return undefined;
    }
    markHandedOver(ino, mode === 'pread');
    return fh;
  }

  /**
   * A sealed file whose map is DATA and HOLE runs over a few store files
   * (opened and checked by the store view as wholeFd's are) handed to the
   * session as runs; undefined (and nothing kept open) when it is not such
   * a file or the session refuses it.
   */
  async function handOverRuns(ino: bigint, path: Buffer): Promise<Handed | undefined> {
    if (!whole?.runsFile || !native?.setFileRuns) return undefined;
    const rf = await whole.runsFile(path);
    if (rf === undefined) return undefined;
    let ok: boolean;
    try {
      ok = native.setFileRuns(ino, rf.fds, rf.runs, rf.size);
    } catch {
      ok = false;
    }
    if (!ok) {
      await rf.close().catch(() => undefined);
      return undefined;
    }
    markHandedOver(ino, true);
    return rf;
  }

  /**
   * handOver, one attempt per file at a time: a caller that finds one
   * running shares it. `use` runs with the handed-over file's handle (a
   * READ that came before the registration is read from it), closed once
   * its last user is done (the session keeps its own); undefined when the
   * file was not handed over.
   */
  async function handOverOnce<R>(ino: bigint, path: Buffer, use: (fh: Handed) => Promise<R>): Promise<R | undefined> {
    let h = handing.get(ino);
    if (!h) {
      h = { handle: handOver(ino, path).catch(() => undefined), users: 0 };
      handing.set(ino, h);
    }
    const mine = h;
    mine.users++;
    try {
      const fh = await mine.handle;
      return fh ? await use(fh) : undefined;
    } finally {
      if (--mine.users === 0) {
        if (handing.get(ino) === mine) handing.delete(ino);
        await (await mine.handle)?.close().catch(() => undefined);
      }
    }
  }

  /**
   * This READ from the handed-over file (later ones never come here);
   * undefined when it was not handed over. A file handed over here, not at
   * an OPEN (files opened before, or every file where the kernel opens them
   * itself), has the directory's next files handed over behind it too.
   */
  function readHandedOver(ino: bigint, key: string, offset: number, size: number): Promise<Buffer | undefined> {
    return handOverOnce(ino, pathOf(key), async (fh) => {
      handAhead(key);
      const into = Buffer.allocUnsafe(size);
      const { bytesRead } = await fh.read(into, 0, size, offset);
      return into.subarray(0, bytesRead);
    }).catch(() => undefined);
  }

  /**
   * A sealed file's first OPEN (the session asks once per node, and only
   * with a store view): handed over before the OPEN is answered, so that
   * very open is passthrough and none of its READs come here — a cold
   * sequential or random read then goes at the kernel's pace, not the
   * agent's. A file that is not one store file whole opens as before.
   */
  async function openHandedOver(ino: bigint): Promise<void> {
    const key = nodes.keyOf(ino);
    if (await handOverOnce(ino, pathOf(key), async () => true)) handAhead(key);
  }

  /** Directories whose next files are being handed over behind an open (one walk per directory at a time). */
  const aheadOf = new Set<string>();

  /**
   * Behind a file's hand-over at its OPEN (or first READ), the next AHEAD
   * regular files of its directory are handed over too, one after another,
   * so a reader going through the directory (`cat *`, `tar`, a full read)
   * finds each opened by passthrough (or read by the session's pread)
   * without waiting for this thread.
   */
  function handAhead(key: string): void {
    const dir = parentKey(key);
    if (aheadOf.has(dir) || aheadOf.size >= AHEAD_DIRS) return;
    aheadOf.add(dir);
    void (async () => {
      try {
        // Where the store view knows what a walk of the tree reads next (an image layer's maps come in that order,
        // across directories), those files; else the directory's next regular files.
        const mapped = whole?.mappedAfter?.(pathOf(key), AHEAD_MAPPED) ?? [];
        const next = mapped.length > 0 ? mapped.map((p) => keyOf(p)) : await nextInDirectory(dir, key);
        for (const child of next) {
          const ino = nodes.inoOf(child);
          // Not again within HANDED_OVER_MS: its READ says when a pread registration was let go.
          if (handing.has(ino) || notWhole.has(ino) || handedWithin(ino, () => HANDED_OVER_MS)) continue;
          // Through `handing`: an OPEN of it that comes first waits for this hand-over instead of making its own.
          await handOverOnce(ino, pathOf(child), async () => true);
        }
      } catch {
        // A listing that cannot be had: those files are handed over at their own opens.
      } finally {
        aheadOf.delete(dir);
      }
    })();
  }

  /** The next AHEAD non-empty regular files of the directory after `key`, by key. */
  async function nextInDirectory(dir: string, key: string): Promise<string[]> {
    const listing = await fs.readdir(pathOf(dir));
    const from = sortedIndexOf(listing.entries, baseName(key));
    const out: string[] = [];
    for (let i = from < 0 ? listing.entries.length : from + 1; i < listing.entries.length && out.length < AHEAD; i++) {
      const e = listing.entries[i];
      if (e.attr && isRegMode(e.attr.mode) && e.attr.size > 0) out.push(childKey(dir, e.name));
    }
    return out;
  }

  /** Large files to hand over ahead (keys), those taken so far (never again), and hand-overs of them under way. */
  const largeQueue: string[] = [];
  const largeTaken = new Set<string>();
  let largeRunning = 0;
  const largeAhead = modes.kernelOpens === true && whole !== undefined && native?.setFileData !== undefined;

  /** Whether attr is a large regular file to hand over ahead (LARGE_FILE .. LARGE_AHEAD_MAX_BYTES), where that is done at all. */
  function isLarge(attr: Attr | undefined): attr is Attr {
    return largeAhead && attr !== undefined && isRegMode(attr.mode) && attr.size >= LARGE_FILE && attr.size <= LARGE_AHEAD_MAX_BYTES;
  }

  /** Queues the file at `key` for a hand-over ahead of its first READ if it is a large regular file (see LARGE_FILE). */
  function largeNamed(key: string, attr: Attr | undefined): void {
    if (!isLarge(attr)) return;
    if (largeTaken.size >= LARGE_MAX || largeQueue.length >= LARGE_QUEUED || largeTaken.has(key)) return;
    largeTaken.add(key);
    largeQueue.push(key);
  }

  /** The walk large hand-overs wait for (holdLargeUntil), while it runs. */
  let largeHeld: Promise<unknown> | undefined;
  function holdLargeUntil(settled: Promise<unknown>): void {
    largeHeld = settled;
    const release = (): void => {
      if (largeHeld !== settled) return;
      largeHeld = undefined;
      pumpLarge();
    };
    settled.then(release, release);
  }

  /** Starts the hand-over of the large file at `key` (counted in largeRunning; the queue goes on when it ends). */
  function startLarge(key: string): void {
    let ino: bigint;
    try {
      ino = nodes.inoOf(key);
    } catch {
      return;
    }
    if (handing.has(ino) || notWhole.has(ino) || handedWithin(ino, () => HANDED_OVER_MS)) return;
    largeRunning++;
    void handOverOnce(ino, pathOf(key), async () => true)
      .catch(() => undefined)
      .finally(() => {
        largeRunning--;
        pumpLarge();
      });
  }

  /** Hands the queued large files over, LARGE_AT_ONCE at a time (a READ of one meanwhile shares its hand-over). */
  function pumpLarge(): void {
    if (largeHeld !== undefined) return;
    while (largeRunning < LARGE_AT_ONCE && largeQueue.length > 0) startLarge(largeQueue.shift()!);
  }

  /**
   * A large file looked up: to be opened, most likely (a walk's listings
   * come by READDIRPLUS, whose entries need no LOOKUP). Handed over at once
   * even while the prefetch walk holds the queue — one file a user named,
   * its map asked before its reader's first READ — within LARGE_AT_ONCE;
   * past that it waits in the queue as listed files do.
   */
  function largeLookedUp(key: string, attr: Attr): void {
    if (largeHeld === undefined || largeRunning >= LARGE_AT_ONCE) {
      largeNamed(key, attr);
      pumpLarge();
      return;
    }
    if (!isLarge(attr) || largeTaken.size >= LARGE_MAX || largeTaken.has(key)) return;
    largeTaken.add(key);
    startLarge(key);
  }

  function listed(dirKey: string, entries: readonly DirEntry[]): void {
    if (!largeAhead) return;
    for (const e of entries) largeNamed(childKey(dirKey, e.name), e.attr);
    pumpLarge();
  }

  /**
   * A sealed layer's statfs barely changes: once known it is answered at
   * once and refreshed behind (one refresh at a time), so a `find` (whose
   * fts asks statfs) never waits for a resolver deadline while they are
   * all down. A LIVE layer's is asked every time.
   */
  let statfsKnown: StatFs | undefined;
  let statfsRefresh: Promise<StatFs> | undefined;
  const askStatfs = (): Promise<StatFs> =>
    (statfsRefresh ??= fs
      .statfs()
      .then((st) => (statfsKnown = kernelStatfs(st, Math.min(life.cacheTtl, 1))))
      .finally(() => (statfsRefresh = undefined)));

  async function listing(ino: bigint): Promise<Listing> {
    const key = nodes.keyOf(ino);
    const l = await fs.readdir(pathOf(key));
    listed(key, l.entries);
    const parent = key === '/' ? l.dir : await fs.stat(pathOf(parentKey(key)));
    // Inos are taken after the last await: the node table may forget what no answer on its way names.
    const entries = kernelEntries(nodes, key, l.entries);
    return { entries, dotIno: BigInt(l.dir.ino), dotdotIno: BigInt(parent.ino), ...timeouts };
  }

  /**
   * A sealed node's whole xattr set, fetched once and handed to the native
   * cache, which then answers every GETXATTR (ENODATA for other names, ERANGE
   * and size probes included) and LISTXATTR of it by itself.
   */
  async function xattrSet(key: string, ino: bigint): Promise<Map<string, Buffer>> {
    const path = pathOf(key);
    const names = await fs.listXattr(path);
    const values = await Promise.all(names.map((n) => fs.getXattr(path, n)));
    const set = new Map(names.map((n, i) => [n, values[i]] as const));
    native?.cacheXattrs(ino, names.map((n, i) => [Buffer.from(n, 'utf8'), values[i]] as const));
    return set;
  }
  const wholeSets = native !== undefined && life.cacheTtl === Infinity;
  // What readers fetch goes into files being cached whole as it arrives: a fill behind its reader never fetches a chunk twice.
  if (data) fs.tapChunks((key, index, bytes) => data.chunkFetched(key, index, bytes));

  return {
    lookup(parent, name): Promise<Entry> {
      const key = childKey(nodes.keyOf(parent), name);
      return t.run('lookup', key, async () => {
        const attr = await fs.stat(pathOf(key), key);
        const ino = nodes.inoOf(key);
        // Looked up to be opened, most likely: a large file's map is asked now, not at its first READ.
        largeLookedUp(key, attr);
        return { ino, attr: kernelAttr(attr), ...timeouts };
      });
    },
    getattr(ino): Promise<AttrAnswer> {
      const key = nodes.keyOf(ino);
      return t.run('getattr', key, async () => ({ attr: kernelAttr(await fs.stat(pathOf(key), key)), attrTimeout: life.kernelSeconds, cacheTtl: life.cacheTtl }));
    },
    readdir(ino): Promise<Listing> {
      return t.run('readdir', nodes.keyOf(ino), () => listing(ino));
    },
    read(ino, _fh, offset, size): Promise<Buffer> {
      const key = nodes.keyOf(ino);
      return t.run('read', key, async () => {
        const path = pathOf(key);
        if (whole) {
          const direct = await readHandedOver(ino, key, Number(offset), size);
          if (direct) return direct;
        }
        // Sealed files are kept whole on disk once read (by this mount, another of the chain, or an earlier agent): what still comes here is read from disk.
        if (data) {
          const cached = await data.readCached(ino, path, Number(offset), size);
          if (cached !== undefined) return cached;
        }
        const read = await fs.readSized(path, Number(offset), size, key);
        // A file the session serves already (this READ was on its way before) is not cached on disk too.
        if (!handedOver.has(ino)) data?.noteRead(ino, path, read.size, Number(offset), read.data.length);
        return read.data;
      });
    },
    readlink(ino): Promise<LinkAnswer> {
      const key = nodes.keyOf(ino);
      return t.run('readlink', key, async () => ({ target: await fs.readlink(pathOf(key)), cacheTtl: life.cacheTtl }));
    },
    getxattr(ino, name): Promise<Buffer> {
      const key = nodes.keyOf(ino);
      const text = xattrName(name);
      if (text === undefined) return Promise.reject(new StrataError(Errno.ENODATA, 'no such attribute'));
      if (wholeSets) {
        return t.run('getxattr', key, async () => {
          const v = (await xattrSet(key, ino)).get(text);
          if (v === undefined) throw new StrataError(Errno.ENODATA, 'no such attribute');
          return v;
        });
      }
      return t.run('getxattr', key, () => fs.getXattr(pathOf(key), text));
    },
    listxattr(ino): Promise<Buffer[]> {
      const key = nodes.keyOf(ino);
      if (wholeSets) return t.run('listxattr', key, async () => [...(await xattrSet(key, ino)).keys()].map((n) => Buffer.from(n, 'utf8')));
      return t.run('listxattr', key, async () => (await fs.listXattr(pathOf(key))).map((n) => Buffer.from(n, 'utf8')));
    },
    statfs(): Promise<StatFs> {
      return t.run('statfs', '/', async () => {
        if (statfsKnown !== undefined && life.cacheTtl === Infinity) {
          askStatfs().catch(() => undefined);
          return statfsKnown;
        }
        return askStatfs();
      });
    },
    listed,
    holdLargeUntil,
    // No OPEN reaches the session where the kernel opens files itself: READs hand files over instead.
    ...(whole && native?.setFileData && modes.kernelOpens !== true ? { open: (ino: bigint) => openHandedOver(ino) } : {}),
  };
}
