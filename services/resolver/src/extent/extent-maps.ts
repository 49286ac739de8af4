import { promises as fs } from 'node:fs';
import { LRUCache } from 'lru-cache';
import * as path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import { isSealed, type LayerRef } from '@strata/layers';
import { isRegMode } from '@strata/posix';
import type { Attr } from '@strata/protocol';
import { attrOf, joinPath, printable, splitPath, type ExtentRun, type MergedEntry, type Node, type StoreFileRef } from '@strata/traversal';
import type { ChainView } from '../chains';
import { AheadBatches, type AheadBatch } from './ahead-batches';
import { storeFileId, type StoreFileId } from './store-identity';

/** One answer maps at most this much of a file: the caller asks again from where it stopped. */
export const MAX_MAP_WINDOW = 64 << 20;
/** ... and holds at most this many runs (a badly fragmented file is mapped in several answers). */
export const MAX_MAP_RUNS = 4096;
/** Siblings one answer maps at most (a request asking more gets this many). */
export const MAX_SIBLINGS = 256;
/**
 * A sibling larger than this is left out: its map would not fit in one
 * window, and a reader of it asks for its own windows. Up to it a sibling
 * is mapped whole (a `dir:` file is one run however large; an image
 * layer's few runs): a directory's shared libraries and package lists
 * come with their directory instead of each in a call of its own.
 */
export const MAX_SIBLING_SIZE = MAX_MAP_WINDOW;
/** Runs the siblings of one answer hold together at most (the answer stays well under a message's bound); a sibling past it is left out. */
export const MAX_ANSWER_RUNS = 65_536;
/** Siblings mapped at once. */
const SIBLINGS_AT_ONCE = 16;
/** Directories listed at once for their subdirectory names (and walks ahead at once), and the most subdirectory names one keeps (a walk goes on past the rest). */
const AHEAD_PARENTS = 16;
const MAX_AHEAD_PARENT = 16_384;
/** Directories after the path's that one answer asked `beyondDirectory` looks at (carried, or passed over without small files) at most. */
const MAX_BEYOND_DIRS = 64;
/** Directories an answer lists and maps itself (not made ahead) at most once it carries something: the reader gets it sooner. */
const MAX_MADE_IN_ANSWER = 8;
/** What must be left of an answer's count for a directory larger than it to fill it with its first files (else it is held for its own call). */
const MIN_PARTIAL = MAX_SIBLINGS / 4;
/** Made ahead behind such an answer: small files (about the next two answers') and directories at most, and rounds of one walk. */
const AHEAD_FILES = 2 * MAX_SIBLINGS;
const AHEAD_DIRS = 96;
const MAX_WALK_ROUNDS = 64;
/** Subdirectory names kept (by directory, and names in all). */
const SUBDIR_LISTS = 4096;
const SUBDIR_NAMES = 65_536;

/** How long an image file's lstat names it in answers (AheadBatches holds a batch longer). */
const RECENT_ID_MS = 1000;

/** Runs an answer's siblings may still hold. */
interface RunRoom {
  runs: number;
}

/** Where a walk of the tree in order is: the files of `parts` are read, its subdirectories are next. */
interface WalkCursor {
  parts: Buffer[];
}

/** A run of the answer, at its offset in the layer's file; data runs name a store file by index. */
export type MappedRun =
  | { kind: 'data'; offset: number; length: number; file: number; fileOffset: number }
  | { kind: 'zero'; offset: number; length: number }
  | { kind: 'unmapped'; offset: number; length: number; reason: string };

export interface ExtentMapAnswer {
  attr: Attr;
  files: StoreFileId[];
  runs: MappedRun[];
  offset: number;
  length: number;
  eof: boolean;
}

/** Another file of the directory, mapped from its start (`map(..., siblings)`). */
export interface SiblingMapAnswer {
  path: Buffer;
  map: ExtentMapAnswer;
}

/** Windows one answer asked to a file's end maps at most while its runs stay under half of MAX_MAP_RUNS (1 GiB). */
const MAX_ANSWER_WINDOWS = 16;

/** Extends `last` by `run` when `run` continues it (the same kind, store file and next byte): windows' cuts are not runs. */
function continues(last: MappedRun | undefined, run: MappedRun): boolean {
  if (last === undefined || last.kind !== run.kind || last.offset + last.length !== run.offset) return false;
  if (last.kind === 'data' && run.kind === 'data') {
    if (last.file !== run.file || last.fileOffset + last.length !== run.fileOffset) return false;
  } else if (last.kind === 'unmapped' && run.kind === 'unmapped' && last.reason !== run.reason) {
    return false;
  }
  last.length += run.length;
  return true;
}

/** The largest integer the wire carries exactly (protobuf uint64 decoded as a JavaScript number). */
const MAX_WIRE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * What one answer checks once for all its files: store directories (their
 * realpath) and the store files image runs name (their lstat), each by
 * store-relative path. An image layer's files all name the same one or two
 * image files: one lstat per answer, not one per file and run.
 */
interface AnswerChecks {
  dirs: Map<string, Promise<boolean>>;
  ids: Map<string, Promise<StoreFileId | undefined>>;
}

function answerChecks(): AnswerChecks {
  return { dirs: new Map(), ids: new Map() };
}

/** A store-relative path with only plain components: not empty, no leading or doubled slash, no "." or "..". */
function plainRelative(rel: string): boolean {
  if (rel === '') return false;
  for (const c of rel.split('/')) if (c === '' || c === '.' || c === '..') return false;
  return true;
}

/** Where `name` is in a listing sorted bytewise, -1 when it is not. */
function indexOfName(entries: readonly MergedEntry[], name: Buffer): number {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = Buffer.compare(entries[mid].name, name);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** A listed regular file no larger than a sibling may be. */
function isSmallFile(e: MergedEntry): e is MergedEntry & { node: Node } {
  return e.node !== undefined && e.node.kind !== 'dir' && isRegMode(Number(e.node.st.mode)) && Number(e.node.st.size) <= MAX_SIBLING_SIZE;
}

/** Where the name after `name` is in a sorted list of names (the list's length when none is). */
function nextIndex(names: readonly Buffer[], name: Buffer): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (Buffer.compare(names[mid], name) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A listing's subdirectory names, sorted as listed, the first MAX_AHEAD_PARENT of them. */
function subdirNames(entries: readonly MergedEntry[]): Buffer[] {
  const names: Buffer[] = [];
  for (const e of entries) {
    if (names.length >= MAX_AHEAD_PARENT) break;
    if (e.node?.kind === 'dir') names.push(e.name);
  }
  return names;
}

function aheadKey(view: ChainView, dir: Buffer): string {
  return `${view.key}\0${dir.toString('latin1')}`;
}

function checkOffset(what: string, value: number, p: Buffer): void {
  if (!Number.isSafeInteger(value) || value < 0) throw StrataError.invalid(`${what} ${value} is out of range`, p);
}

/**
 * Extent maps of a sealed chain's files, in store-relative terms: the
 * merged tree finds the object that supplies the path, its layer source
 * maps it (a `dir:` file to itself, an image file through its filesystem,
 * partition and image chain), and every store file a run names is stated
 * so a reader can tell the file it opens is the one mapped.
 */
export class ExtentMaps {
  /**
   * Store files image runs name, as lstat saw them within the last
   * RECENT_ID_MS: the answers of a walk (and the directories mapped ahead
   * of them) name the same one or two image files, stated once a second
   * rather than once per answer — no older than a batch mapped ahead may be.
   */
  private readonly recentIds = new LRUCache<string, Promise<StoreFileId | undefined>>({ max: 1024, ttl: RECENT_ID_MS });
  /** Real paths of store files as the sources name them, relative to the store (they do not move in a sealed chain). */
  private readonly relative = new Map<string, string | undefined>();
  /** Directories mapped ahead of their call. */
  private readonly ahead = new AheadBatches();
  /** Subdirectory names of directories (to find where a walk goes next), by chain and path, and those being listed. */
  private readonly subdirs = new LRUCache<string, Buffer[]>({ max: SUBDIR_LISTS, maxSize: SUBDIR_NAMES, sizeCalculation: (names) => names.length + 1 });
  private readonly listingSubdirs = new Map<string, Promise<Buffer[]>>();
  /** Walks ahead under way, by chain: where the next round starts (the latest answer's end). */
  private readonly walks = new Map<string, { next: WalkCursor | undefined }>();

  constructor(
    private readonly view: (ref: LayerRef) => Promise<ChainView>,
    /** The store root's real path. */
    private readonly storeRoot: string,
    /**
     * Maps a sealed `dir:` file from what its listing found (asListed)
     * rather than by realpath and lstat of the file; false only to compare
     * the two ways in tests.
     */
    private readonly fromListing = true,
  ) {}

  async map(ref: LayerRef, filePath: Buffer, offset: number, length: number): Promise<ExtentMapAnswer> {
    return (await this.mapWithSiblings(ref, filePath, offset, length, 0)).map;
  }

  /**
   * The map of a file and, when `siblings` > 0, of up to that many (at
   * most MAX_SIBLINGS) other small regular files of its directory, those
   * after it in bytewise order first, wrapping around. A sibling that
   * cannot be mapped is left out: its reader asks for it and gets the
   * error. The grant checked is the file's (read on the layer): a sibling
   * is in the same layer. With `beyondDirectory`, what the directory
   * leaves of the count is filled with the small files of the directories
   * after it among its parent's subdirectories (bytewise), whole
   * directories only, as many as fit (beyondDirs).
   */
  async mapWithSiblings(ref: LayerRef, filePath: Buffer, offset: number, length: number, siblings: number, beyondDirectory = false): Promise<{ map: ExtentMapAnswer; siblings: SiblingMapAnswer[] }> {
    checkOffset('extent map offset', offset, filePath);
    checkOffset('extent map length', length, filePath);
    const view = await this.view(ref);
    const live = view.layers.find((l) => !isSealed(l));
    if (view.ttlMs !== undefined || live) {
      // A LIVE file may be rewritten between the map and the reads of it; nothing here proves it was not.
      const which = live ? `layer ${live.layerId}${live.name ? ` (${live.name})` : ''}` : 'a layer of the chain';
      throw StrataError.precondition(`no extent maps of a LIVE chain: ${which} may change under a map; read it through the resolver`, Errno.EOPNOTSUPP);
    }
    const parts = splitPath(filePath);
    const canon = joinPath(parts);
    const want = Math.min(Number.isSafeInteger(siblings) && siblings > 0 ? siblings : 0, MAX_SIBLINGS);
    const checks = answerChecks();
    if (want === 0 || parts.length === 0) return { map: await this.mapNode(canon, await view.projection.lookup(canon), offset, length, checks), siblings: [] };
    const name = parts[parts.length - 1];
    const dirParts = parts.slice(0, -1);
    const dir = joinPath(dirParts);
    // A batch made ahead for this directory answers this call (once); else the directory is listed now.
    const batch = await this.ahead.take(aheadKey(view, dir));
    // The directory's merged listing holds the file's own node, as a lookup of it gives (mergeDir), beside its
    // siblings'; a name it does not list (gone, damaged, a whiteout's) is looked up for the answer's error.
    const entries = batch?.entries ?? (await view.projection.readdirNodes(dir).catch((): MergedEntry[] => []));
    const own = entries[indexOfName(entries, name)]?.node;
    const made = offset === 0 && length === 0 ? batch?.maps.get(name.toString('latin1')) : undefined;
    const map = made ?? (await this.mapNode(canon, own ?? (await view.projection.lookup(canon)), offset, length, checks));
    const room: RunRoom = { runs: MAX_ANSWER_RUNS };
    const answer = { map, siblings: await this.siblingsOf(parts, entries, want, checks, room, !(beyondDirectory && offset === 0), batch?.maps) };
    if (offset !== 0) return answer;
    if (!beyondDirectory) {
      // A file's first map with its siblings: a reader going through the tree (find | xargs cat, tar, cp -r) asks for the next directory's next.
      this.mapNextDir(view, dirParts, 1);
      return answer;
    }
    if (dirParts.length === 0) {
      // A file of the root (a mount's large files are handed over as the root is listed): its answer carries no
      // directory, but the walk from the root is made ahead for the reader that may come.
      this.walkAhead(view, { parts: [] });
      return answer;
    }
    this.keepSubdirs(view, dir, entries);
    // Where the walk is: this directory's files (its subdirectories next: the file may be the last of an answer before,
    // asked for the answer after it, whose subdirectories no answer carried yet).
    let end: WalkCursor = { parts: dirParts };
    if (answer.siblings.length < want) {
      const more = await this.beyondDirs(view, end, want - answer.siblings.length, room);
      answer.siblings.push(...more.siblings);
      end = more.end;
    }
    // What the walk asks next is made behind this answer: the call for it answers at once.
    this.walkAhead(view, end);
    return answer;
  }

  /**
   * Maps of up to `want` small regular files of the listing, those after
   * the file in bytewise order first, then (unless `wrap` is false: a walk
   * in order read them) wrapping around, taken from `made` where it has
   * them, as many as `room` has runs for.
   */
  private async siblingsOf(parts: Buffer[], entries: MergedEntry[], want: number, checks: AnswerChecks, room: RunRoom, wrap: boolean, made?: ReadonlyMap<string, ExtentMapAnswer>): Promise<SiblingMapAnswer[]> {
    const name = parts[parts.length - 1];
    const at = entries.findIndex((e) => Buffer.compare(e.name, name) > 0);
    const start = at < 0 ? entries.length : at;
    const picked: { path: Buffer; node: Node; made: ExtentMapAnswer | undefined }[] = [];
    for (let i = 0; i < (wrap ? entries.length : entries.length - start) && picked.length < want; i++) {
      const e = entries[(start + i) % entries.length];
      if (!isSmallFile(e) || e.name.equals(name)) continue;
      picked.push({ path: joinPath([...parts.slice(0, -1), e.name]), node: e.node, made: made?.get(e.name.toString('latin1')) });
    }
    // A few at a time: an image layer's map reads its filesystem's extent tree, and a cold one waits on the disk.
    const out: SiblingMapAnswer[] = [];
    for (let i = 0; i < picked.length; i += SIBLINGS_AT_ONCE) {
      const maps = await Promise.all(
        picked.slice(i, i + SIBLINGS_AT_ONCE).map((s) => (s.made ? Promise.resolve(s.made) : this.mapNode(s.path, s.node, 0, 0, checks)).then((map) => ({ path: s.path, map }), () => undefined)),
      );
      for (const m of maps) {
        if (m === undefined || m.map.runs.length > room.runs) continue;
        room.runs -= m.map.runs.length;
        out.push(m);
      }
    }
    return out;
  }

  /**
   * Behind a directory's first map (asked without beyondDirectory), the
   * next directory of its parent (in bytewise order) is listed and its
   * small files mapped, held for the call that comes for it
   * (AheadBatches): that call answers at once instead of the reader
   * waiting on the listing and the maps. Nothing is made for the root's
   * next (it has none), a parent too large to keep listed, or a directory
   * already made.
   */
  private mapNextDir(view: ChainView, dirParts: Buffer[], count: number): void {
    if (dirParts.length === 0) return;
    const parentParts = dirParts.slice(0, -1);
    const subdirs = this.subdirs.get(aheadKey(view, joinPath(parentParts)));
    if (subdirs === undefined) {
      // Listed behind this answer: the directories after the next one are made ahead.
      void this.listSubdirs(view, parentParts);
      return;
    }
    // Offered before this answer leaves: the call for the next directory, which comes after it, finds it.
    for (let i = nextIndex(subdirs, dirParts[dirParts.length - 1]), n = 0; i < subdirs.length && n < count; i++, n++) {
      const nextDir = joinPath([...parentParts, subdirs[i]]);
      this.ahead.offer(aheadKey(view, nextDir), () => this.batchOf(view, nextDir));
    }
  }

  /** Keeps a directory's subdirectory names from its listing. */
  private keepSubdirs(view: ChainView, dir: Buffer, entries: readonly MergedEntry[]): void {
    this.subdirs.set(aheadKey(view, dir), subdirNames(entries));
  }

  /** A directory's subdirectory names, sorted (kept, or listed once however many ask); empty for one unreadable. */
  private async listSubdirs(view: ChainView, parentParts: Buffer[]): Promise<readonly Buffer[]> {
    const parent = joinPath(parentParts);
    const k = aheadKey(view, parent);
    const kept = this.subdirs.get(k);
    if (kept !== undefined) return kept;
    let listing = this.listingSubdirs.get(k);
    if (listing === undefined) {
      if (this.listingSubdirs.size >= AHEAD_PARENTS) return [];
      listing = view.projection
        .readdirNodes(parent)
        .then((entries) => {
          const names = subdirNames(entries);
          this.subdirs.set(k, names);
          return names;
        })
        .catch((): Buffer[] => [])
        .finally(() => this.listingSubdirs.delete(k));
      this.listingSubdirs.set(k, listing);
    }
    return listing;
  }

  /**
   * The directory a walk of the tree in order (find, tar, cp -r: each
   * directory, then its subdirectories, bytewise) comes to after `at`: its
   * first subdirectory, else the next subdirectory of the nearest ancestor
   * that has one past the way down. Undefined at the end of the tree.
   */
  private async nextInWalk(view: ChainView, at: WalkCursor): Promise<Buffer[] | undefined> {
    const own = await this.listSubdirs(view, at.parts);
    if (own.length > 0) return [...at.parts, own[0]];
    // Bounded by the path's depth.
    for (let p = at.parts; p.length > 0; p = p.slice(0, -1)) {
      const parent = p.slice(0, -1);
      const subdirs = await this.listSubdirs(view, parent);
      const i = nextIndex(subdirs, p[p.length - 1]);
      if (i < subdirs.length) return [...parent, subdirs[i]];
    }
    return undefined;
  }

  /**
   * The small files of the directories a walk of the tree comes to after
   * `from` (nextInWalk: subdirectories first, then the next ones up the
   * tree), whole directories while they fit in `budget`, each taken from
   * a batch made ahead (or made now): what the walk reads next comes in
   * this answer instead of a call of its own. A directory that does not
   * fit is held for its own call — or, when at least MIN_PARTIAL of the
   * count is left, fills it with its first files; one with no small file,
   * or unreadable, is passed over. `end`: where the answer leaves the walk.
   */
  private async beyondDirs(view: ChainView, from: WalkCursor, budget: number, room: RunRoom): Promise<{ siblings: SiblingMapAnswer[]; end: WalkCursor }> {
    const siblings: SiblingMapAnswer[] = [];
    let end = from;
    for (let n = 0, made = 0; n < MAX_BEYOND_DIRS; n++) {
      const parts = await this.nextInWalk(view, end);
      if (parts === undefined) break;
      const dir = joinPath(parts);
      const key = aheadKey(view, dir);
      // Past a few directories made for this answer, it leaves (the walk ahead behind it makes the rest for the next).
      if (!this.ahead.holds(key) && made++ >= MAX_MADE_IN_ANSWER && siblings.length > 0) break;
      const batch = (await this.ahead.take(key)) ?? (await this.batchOf(view, dir).catch(() => undefined));
      if (batch !== undefined) {
        const small = batch.entries.filter(isSmallFile);
        // One the batch could not map is left out, as a sibling is: its reader asks for it and gets the error.
        const maps = small.flatMap((e) => {
          const map = batch.maps.get(e.name.toString('latin1'));
          return map ? [{ path: joinPath([...parts, e.name]), map }] : [];
        });
        const runs = maps.reduce((n, m) => n + m.map.runs.length, 0);
        if (small.length > budget - siblings.length || runs > room.runs) {
          if (budget - siblings.length < MIN_PARTIAL) {
            this.ahead.hold(key, batch);
            break;
          }
          // A directory larger than what is left, and much is left: its first files fill the answer (the reader asks
          // for the answer after it by the last of them, whose siblings are the directory's next files).
          for (const m of maps) {
            if (siblings.length >= budget || m.map.runs.length > room.runs) break;
            room.runs -= m.map.runs.length;
            siblings.push(m);
          }
          end = { parts };
          break;
        }
        room.runs -= runs;
        siblings.push(...maps);
      }
      end = { parts };
    }
    return { siblings, end };
  }

  /**
   * Behind an answer, the directories a walk comes to next are listed and
   * mapped (AheadBatches), as many as the next answer or two carries: a
   * reader's next call finds them made. One walk per chain at a time; an
   * answer that comes during one has the walk go on from where it left.
   */
  private walkAhead(view: ChainView, from: WalkCursor): void {
    const running = this.walks.get(view.key);
    if (running !== undefined) {
      running.next = from;
      return;
    }
    if (this.walks.size >= AHEAD_PARENTS) return;
    const state: { next: WalkCursor | undefined } = { next: undefined };
    this.walks.set(view.key, state);
    void (async () => {
      let at: WalkCursor | undefined = from;
      for (let rounds = 0; at !== undefined && rounds < MAX_WALK_ROUNDS; rounds++) {
        await this.makeAhead(view, at);
        at = state.next;
        state.next = undefined;
      }
    })()
      .catch(() => undefined)
      .finally(() => this.walks.delete(view.key));
  }

  /** Makes the batches of the directories a walk comes to after `from`, up to AHEAD_FILES small files or AHEAD_DIRS directories. */
  private async makeAhead(view: ChainView, from: WalkCursor): Promise<void> {
    let at = from;
    let files = 0;
    for (let n = 0; n < AHEAD_DIRS && files < AHEAD_FILES; n++) {
      const parts = await this.nextInWalk(view, at);
      if (parts === undefined) return;
      const dir = joinPath(parts);
      const batch = await this.ahead.ahead(aheadKey(view, dir), () => this.batchOf(view, dir));
      if (batch !== undefined) files += batch.maps.size;
      at = { parts };
    }
  }

  /** A directory's listing and the maps (from their start) of its first small files, as many as one answer holds. */
  private async batchOf(view: ChainView, dir: Buffer): Promise<AheadBatch> {
    const entries = await view.projection.readdirNodes(dir);
    this.keepSubdirs(view, dir, entries);
    const dirParts = splitPath(dir);
    const checks = answerChecks();
    const maps = new Map<string, ExtentMapAnswer>();
    const small = entries.filter(isSmallFile).slice(0, MAX_SIBLINGS + 1);
    // No more runs than one answer carries (a fragmented filesystem's files have thousands each).
    let runs = 0;
    for (let i = 0; i < small.length && runs < MAX_ANSWER_RUNS; i += SIBLINGS_AT_ONCE) {
      await Promise.all(
        small.slice(i, i + SIBLINGS_AT_ONCE).map((e) =>
          this.mapNode(joinPath([...dirParts, e.name]), e.node, 0, 0, checks).then(
            (m) => {
              maps.set(e.name.toString('latin1'), m);
              runs += m.runs.length;
            },
            () => undefined,
          ),
        ),
      );
    }
    return { entries, maps };
  }

  private async mapNode(canon: Buffer, node: Node, offset: number, length: number, checks: AnswerChecks): Promise<ExtentMapAnswer> {
    if (node.kind === 'dir') throw new StrataError(Errno.EISDIR, `is a directory: ${printable(canon)}`, { path: canon });
    if (!isRegMode(Number(node.st.mode))) throw StrataError.invalid(`not a regular file: ${printable(canon)}`, canon);
    const attr = attrOf(node);
    const size = Number(node.st.size);
    const want = Math.min(length === 0 ? Number.MAX_SAFE_INTEGER : length, MAX_MAP_WINDOW, Math.max(0, size - offset));
    const obj = node.obj;
    if (this.fromListing && want > 0) {
      const whole = obj.layer.storeFile?.(obj);
      const known = whole && (await this.asListed(whole, checks));
      // One run, however long: the window bounds an answer's runs, and a store file that is the file whole has one
      // (a reader hands a 1 GiB file over after one call, not sixteen).
      const all = Math.min(length === 0 ? Number.MAX_SAFE_INTEGER : length, Math.max(0, size - offset));
      if (known) return { attr, files: [known], runs: [{ kind: 'data', offset, length: all, file: 0, fileOffset: offset }], offset, length: all, eof: offset + all >= size };
    }
    const files: StoreFileId[] = [];
    const index = new Map<string, number>();
    const runs: MappedRun[] = [];
    // Asked to its end, a file whose runs are few is mapped on past the window (up to MAX_ANSWER_WINDOWS): an image
    // layer's 1 GiB file of a few dozen runs is handed over after one call, not sixteen.
    const end = offset + (length === 0 ? Math.max(0, size - offset) : want);
    let pos = offset;
    for (let windows = 0; pos < end && windows < MAX_ANSWER_WINDOWS && (windows === 0 || runs.length < MAX_MAP_RUNS / 2); windows++) {
      const from = pos;
      const span = Math.min(MAX_MAP_WINDOW, end - from);
      const raw: ExtentRun[] = obj.layer.extentMap ? await obj.layer.extentMap(obj, from, span) : [{ kind: 'unmapped', length: span, reason: 'the layer cannot map extents' }];
      for (const r of raw) {
        if (runs.length >= MAX_MAP_RUNS) break;
        if (!Number.isSafeInteger(r.length) || r.length <= 0 || pos + r.length > from + span) throw StrataError.io(`extent map of ${printable(canon)}: a run of ${r.length} bytes at ${pos} lies outside the range mapped`, { path: canon });
        let run: MappedRun;
        if (r.kind !== 'data') {
          run = r.kind === 'zero' ? { kind: 'zero', offset: pos, length: r.length } : { kind: 'unmapped', offset: pos, length: r.length, reason: r.reason };
        } else {
          const rel = await this.storeRelative(r.file);
          let i = rel === undefined ? undefined : index.get(rel);
          if (rel !== undefined && i === undefined) {
            const id = await this.idOf(rel, checks);
            // The wire's integers are safe integers (a larger one would not decode): such a file is left to the resolver.
            if (id && [id.dev, id.ino, id.size].every((v) => v <= MAX_WIRE)) {
              i = files.push(id) - 1;
              index.set(rel, i);
            }
          }
          run = i === undefined ? { kind: 'unmapped', offset: pos, length: r.length, reason: 'the store file cannot be named' } : { kind: 'data', offset: pos, length: r.length, file: i, fileOffset: r.fileOffset };
        }
        if (!continues(runs[runs.length - 1], run)) runs.push(run);
        pos += r.length;
      }
      // A window its runs did not cover (too many runs): the answer ends where they do.
      if (pos < from + span) break;
    }
    const covered = pos - offset;
    return { attr, files, runs, offset, length: covered, eof: offset + covered >= size };
  }

  /**
   * A store file as the listing found it, when that is enough to name it:
   * its store-relative path is a plain one (no empty, "." or ".."
   * component) and valid UTF-8, its identity fits the wire, and its
   * directory is still where it was listed (its real path is its path).
   * Undefined otherwise: the file is then mapped the slow way.
   *
   * Why this is as safe as realpath + lstat of every file: the path is
   * the layer root's real path (resolved inside the store when the source
   * was opened) followed by names the merge found by lstat to be
   * directories, never followed, so it holds no symlink and lies in the
   * layer's directory (storeFile refuses anything else). The identity is
   * the lstat that found the file, made for this very answer (the merge
   * lists a directory afresh each time, a lookup looks its name up afresh;
   * only merged directories are kept), or seconds before it for a
   * directory mapped ahead (AheadBatches); an image file's runs name it as
   * stated within the last second (recentIds). A directory swapped for a symlink
   * since it was kept is caught by one realpath per store directory and
   * answer. What none of this can see — a file swapped or rewritten
   * between this answer and the read — the reader does: the agent opens
   * the path beneath its store root with O_NOFOLLOW on every component and
   * refuses a file whose fstat differs from the identity here
   * (docs/operations.md, "Direct reads from the store"), as it did when
   * the identity came from a second lstat.
   */
  private async asListed(whole: StoreFileRef, checks: AnswerChecks): Promise<StoreFileId | undefined> {
    const rel = whole.path.toString('utf8');
    if (!Buffer.from(rel, 'utf8').equals(whole.path) || !plainRelative(rel)) return undefined;
    const { st } = whole;
    if (st.dev > MAX_WIRE || st.ino > MAX_WIRE || st.size > MAX_WIRE) return undefined;
    const cut = rel.lastIndexOf('/');
    const dir = cut < 0 ? '' : rel.slice(0, cut);
    let real = checks.dirs.get(dir);
    if (!real) {
      real = this.isRealDir(dir);
      checks.dirs.set(dir, real);
    }
    if (!(await real)) return undefined;
    return { path: rel, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs };
  }

  /** lstat of a store file an image run names, once per answer (undefined when it cannot be stated). */
  private idOf(rel: string, checks: AnswerChecks): Promise<StoreFileId | undefined> {
    let id = checks.ids.get(rel) ?? this.recentIds.get(rel);
    if (id === undefined) {
      const stating = storeFileId(this.storeRoot, rel).catch(() => undefined);
      // A store file that cannot be stated is stated again by the next answer.
      void stating.then((got) => got === undefined && this.recentIds.get(rel) === stating && this.recentIds.delete(rel));
      this.recentIds.set(rel, stating);
      id = stating;
    }
    checks.ids.set(rel, id);
    return id;
  }

  /** Whether the store directory `rel` (store-relative, "" the root) is a directory whose real path is its path: no symlink on the way. */
  private async isRealDir(rel: string): Promise<boolean> {
    const full = rel === '' ? this.storeRoot : path.join(this.storeRoot, rel);
    return fs.realpath(full).then(
      (real) => real === full,
      () => false,
    );
  }

  /** A source's real path of a store file, relative to the store; undefined when it lies outside (never followed). */
  private async storeRelative(file: string): Promise<string | undefined> {
    if (this.relative.has(file)) return this.relative.get(file);
    let rel: string | undefined;
    try {
      const real = await fs.realpath(file);
      const r = path.relative(this.storeRoot, real);
      rel = r !== '' && !path.isAbsolute(r) && r.split(path.sep).every((c) => c !== '..' && c !== '.' && c !== '') ? r : undefined;
    } catch {
      rel = undefined;
    }
    if (this.relative.size >= 65_536) this.relative.clear();
    this.relative.set(file, rel);
    return rel;
  }
}
