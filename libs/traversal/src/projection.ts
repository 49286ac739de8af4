import { LRUCache } from 'lru-cache';
import { Errno, GrpcCode, StrataError, errnoName, isStrataError } from '@strata/errors';
import { Attr, isDirStat, isLinkStat, isRegStat } from './attr';
import { mergeDir, type MergedEntry } from './merge';
import { DirNode, LeafNode, Node, attrOf, supplierOf } from './node';
import { isOpaqueDir, isOverlayPrivateXattr, isWhiteoutDevice, isWhiteoutName, visibleXattrNames, whiteoutNameFor } from './overlay-rules';
import { joinPath, printable, splitPath, toPathBuffer } from './paths';
import { DirSource } from './source/dir-source';
import type { LayerObject, LayerSource, StatFs } from './source/layer-source';

/** Linux follows at most 40 symlinks while resolving one path (MAXSYMLINKS). */
const MAX_SYMLINK_HOPS = 40;
/** Largest single read; bigger ranges are split by the caller. */
export const MAX_READ = 64 * 1024 * 1024;

export interface DirEntry {
  name: Buffer;
  attr: Attr;
}

export interface WalkEntry {
  /** Absolute path inside the layer. */
  path: Buffer;
  attr: Attr;
  linkTarget?: Buffer;
}

/** A path a walk could not read: an entry whose object is damaged, or a directory whose listing is (its own entry came before). */
export interface WalkError {
  path: Buffer;
  error: StrataError;
}

/** Damaged objects logged, remembered so that each path is logged once. */
const DAMAGE_LOG_PATHS = 10_000;

export interface WalkOptions {
  /** 0: no limit; 1: the root's children; ... */
  maxDepth?: number;
  includeLinkTargets?: boolean;
  /** Entries per yielded batch. */
  batchSize?: number;
}

export interface ReadResult {
  data: Buffer;
  eof: boolean;
}

export type { StatFs };

export interface ProjectionOptions {
  /** Resolved directories kept in memory (0: none). Paths are resolved from the nearest cached ancestor. */
  dirCacheEntries?: number;
  /** How long a cached directory stays valid; leave unset for sealed chains, which never change. */
  dirCacheTtlMs?: number;
  /** Told once per path about each damaged object met (`traversal.damaged`: path, errno, message). */
  log?: (event: Record<string, unknown>) => void;
}

/** Errnos that say the object's bytes are damaged, as opposed to a path that does not exist or a bad request. */
const DAMAGE_ERRNOS = new Set<number>([Errno.EUCLEAN, Errno.EBADMSG, Errno.EIO, Errno.EOPNOTSUPP, Errno.EOVERFLOW]);

function enoent(path: Buffer): StrataError {
  return StrataError.notFound(`no such file or directory: ${printable(path)}`, path);
}

function notDir(path: Buffer): StrataError {
  return StrataError.notDir(`not a directory: ${printable(path)}`, path);
}

/**
 * The merged, read-only view of one layer chain: the delta traversal over
 * layer sources (overlayfs rules between layers, each layer read through its
 * own source). It answers one path at a time, touching only the directories
 * on that path, never the whole tree.
 */
export class Projection {
  /** The layers, topmost first. */
  readonly layers: LayerSource[];
  private readonly dirCache: LRUCache<string, DirNode> | undefined;
  private readonly log: ((event: Record<string, unknown>) => void) | undefined;
  private readonly damageLogged = new LRUCache<string, true>({ max: DAMAGE_LOG_PATHS });

  /** Layers as sources, or as folders (each becomes a `dir:` source). */
  constructor(layers: readonly (string | Buffer | LayerSource)[], options: ProjectionOptions = {}) {
    if (layers.length === 0) throw new StrataError(Errno.EINVAL, 'a projection needs at least one layer');
    this.layers = layers.map((l) => (typeof l === 'string' || Buffer.isBuffer(l) ? new DirSource(l) : l));
    const entries = options.dirCacheEntries ?? 4096;
    this.dirCache =
      entries > 0
        ? new LRUCache<string, DirNode>({ max: entries, ...(options.dirCacheTtlMs ? { ttl: options.dirCacheTtlMs } : {}) })
        : undefined;
    this.log = options.log;
  }

  /** Resolves a path to the node that supplies it. The last component is never followed. */
  async lookup(path: Buffer | string): Promise<Node> {
    const p = toPathBuffer(path);
    try {
      return await this.resolve(p);
    } catch (err) {
      const e = isStrataError(err) ? withPath(err, p) : StrataError.from(err, `lookup ${printable(p)}`, p);
      this.damaged(p, e);
      throw e;
    }
  }

  /** Logs a damaged object once per path (the answer itself carries the error every time). */
  private damaged(path: Buffer, err: StrataError): void {
    if (!this.log || !DAMAGE_ERRNOS.has(err.errno)) return;
    const key = path.toString('latin1');
    if (this.damageLogged.has(key)) return;
    this.damageLogged.set(key, true);
    this.log({ event: 'traversal.damaged', path: printable(path), errno: errnoName(err.errno), message: err.message });
  }

  async stat(path: Buffer | string): Promise<Attr> {
    return attrOf(await this.lookup(path));
  }

  /**
   * Entries of a merged directory with their attributes, sorted bytewise.
   * An entry whose object cannot be read fails the call with its error
   * (readdirNodes lists it with the error instead, as ReadDir does).
   */
  async readdir(path: Buffer | string): Promise<DirEntry[]> {
    return (await this.readdirNodes(path)).map((e) => {
      if (!e.node) throw e.error;
      return { name: e.name, attr: attrOf(e.node) };
    });
  }

  /**
   * The same entries with the node a lookup of each would give (callers
   * cache them instead of looking names up again); an entry whose object
   * cannot be read carries the error, with its path, instead.
   */
  async readdirNodes(path: Buffer | string): Promise<MergedEntry[]> {
    const p = toPathBuffer(path);
    let at: { node: Node; canon: Buffer[] };
    try {
      at = await this.resolveAt(p);
    } catch (err) {
      const e = isStrataError(err) ? withPath(err, p) : StrataError.from(err, `lookup ${printable(p)}`, p);
      this.damaged(p, e);
      throw e;
    }
    if (at.node.kind !== 'dir') throw notDir(p);
    const entries = await this.childrenAt(p, at.node);
    this.keepChildDirs(at.canon, entries);
    return entries;
  }

  /**
   * The merged subdirectories a listing found, kept as a lookup of each
   * would keep them (the merge gave each the node a lookup gives): a
   * program going on into them (find, a walk, a sibling's extent map)
   * resolves them from the cache, not by a lookup through every layer and
   * its opaque checks. A listing with more subdirectories than an eighth
   * of the cache is not kept (it would push out the directories in use).
   */
  private keepChildDirs(canon: Buffer[], entries: readonly MergedEntry[]): void {
    const cache = this.dirCache;
    if (!cache) return;
    let dirs = 0;
    for (const e of entries) if (e.node?.kind === 'dir') dirs++;
    if (dirs === 0 || dirs > cache.max / 8) return;
    for (const e of entries) {
      if (e.node?.kind !== 'dir') continue;
      const k = joinPath([...canon, e.name]).toString('latin1');
      if (!cache.has(k)) cache.set(k, e.node);
    }
  }

  /** The entries of a merged directory node. */
  children(dir: DirNode): Promise<MergedEntry[]> {
    return mergeDir(dir);
  }

  /** The entries of the merged directory at `path`, errors of damaged entries named by their path and logged. */
  private async childrenAt(path: Buffer, dir: DirNode): Promise<MergedEntry[]> {
    let entries: MergedEntry[];
    try {
      entries = await mergeDir(dir);
    } catch (err) {
      const e = withPath(err, path);
      this.damaged(path, e);
      throw e;
    }
    const parts = splitPath(path);
    return entries.map((e) => {
      if (!e.error) return e;
      const child = joinPath([...parts, e.name]);
      const error = withPath(e.error, child);
      this.damaged(child, error);
      return { name: e.name, error };
    });
  }

  async read(path: Buffer | string, offset: number, length: number): Promise<ReadResult> {
    const p = toPathBuffer(path);
    checkRange(p, offset, length);
    return this.readNode(p, await this.lookup(p), offset, length);
  }

  /** A read of a node already looked up, the range already checked (the path is for messages). */
  private async readNode(path: Buffer, node: Node, offset: number, length: number): Promise<ReadResult> {
    if (node.kind === 'dir') throw new StrataError(Errno.EISDIR, `is a directory: ${printable(path)}`, { path });
    if (!isRegStat(node.st)) throw StrataError.invalid(`not a regular file: ${printable(path)}`, path);
    const size = Number(node.st.size);
    if (length === 0 || offset >= size) return { data: Buffer.alloc(0), eof: true };
    const want = Math.min(length, size - offset);
    try {
      const data = await node.obj.layer.read(node.obj, offset, want);
      return { data, eof: offset + data.length >= size };
    } catch (err) {
      throw withPath(err, path);
    }
  }

  /** A symlink's target, verbatim. */
  async readlink(path: Buffer | string): Promise<Buffer> {
    const p = toPathBuffer(path);
    const node = await this.lookup(p);
    if (node.kind === 'dir' || !isLinkStat(node.st)) throw StrataError.invalid(`not a symlink: ${printable(p)}`, p);
    return this.linkTarget(p, node);
  }

  /** The target of a symlink node (the path is for messages). */
  async linkTarget(path: Buffer, node: LeafNode): Promise<Buffer> {
    try {
      return await node.obj.layer.readlink(node.obj);
    } catch (err) {
      throw withPath(err, path);
    }
  }

  /** Extended attribute names, overlay-private ones left out. */
  async listXattr(path: Buffer | string): Promise<string[]> {
    const p = toPathBuffer(path);
    const node = await this.lookup(p);
    try {
      return await visibleXattrNames(supplierOf(node));
    } catch (err) {
      throw withPath(err, p);
    }
  }

  async getXattr(path: Buffer | string, name: string): Promise<Buffer> {
    const p = toPathBuffer(path);
    const obj = supplierOf(await this.lookup(p));
    let value: Buffer | undefined;
    try {
      value = obj.layer.overlayRules && isOverlayPrivateXattr(name) ? undefined : await obj.layer.getXattr(obj, name);
    } catch (err) {
      throw withPath(err, p);
    }
    if (value === undefined) {
      throw new StrataError(Errno.ENODATA, `no attribute ${name} on ${printable(p)}`, { path: p, code: GrpcCode.NOT_FOUND });
    }
    return value;
  }

  /** Filesystem statistics of the topmost layer's filesystem, as overlayfs reports them. */
  statfs(): Promise<StatFs> {
    return this.layers[0].statfs();
  }

  /**
   * The subtree under a path, depth first, parents before children and
   * siblings sorted bytewise, in batches. The root of the walk comes first.
   * The first unreadable entry or listing fails the walk (see walkAll).
   */
  async *walk(path: Buffer | string, options: WalkOptions = {}): AsyncGenerator<WalkEntry[]> {
    for await (const batch of this.walkAll(path, options)) {
      for (const e of batch) if ('error' in e) throw e.error;
      yield batch as WalkEntry[];
    }
  }

  /**
   * The walk that goes on past damage, as a forensic read of a damaged disk
   * wants: an entry whose object cannot be read, or a directory whose
   * listing cannot be read (after its own entry), comes as a WalkError in
   * its place and the walk continues with the next name. Only the root of
   * the walk failing fails it.
   */
  async *walkAll(path: Buffer | string, options: WalkOptions = {}): AsyncGenerator<(WalkEntry | WalkError)[]> {
    const rootPath = toPathBuffer(path);
    const names = splitPath(rootPath);
    const batchSize = options.batchSize ?? 512;
    const maxDepth = options.maxDepth ?? 0;
    const root = await this.lookup(rootPath);
    let batch: (WalkEntry | WalkError)[] = [];
    const emit = async (p: Buffer, node: Node): Promise<void> => {
      const entry: WalkEntry = { path: p, attr: attrOf(node) };
      if (options.includeLinkTargets && node.kind === 'leaf' && isLinkStat(node.st)) {
        entry.linkTarget = await this.linkTarget(p, node).catch(() => Buffer.alloc(0));
      }
      batch.push(entry);
    };
    const childrenOf = async (p: Buffer, node: DirNode): Promise<MergedEntry[]> => {
      try {
        return await this.childrenAt(p, node);
      } catch (err) {
        batch.push({ path: p, error: withPath(err, p) });
        return [];
      }
    };
    const rootJoined = joinPath(names);
    await emit(rootJoined, root);
    if (root.kind === 'dir') {
      // Explicit stack of iterators so a deep tree cannot overflow the call stack.
      const stack: { prefix: Buffer[]; entries: MergedEntry[]; i: number }[] = [];
      stack.push({ prefix: names, entries: await childrenOf(rootJoined, root), i: 0 });
      while (stack.length > 0) {
        const top = stack[stack.length - 1];
        if (top.i >= top.entries.length) {
          stack.pop();
          continue;
        }
        const e = top.entries[top.i++];
        const childNames = [...top.prefix, e.name];
        const childPath = joinPath(childNames);
        if (e.node) await emit(childPath, e.node);
        else batch.push({ path: childPath, error: e.error });
        if (batch.length >= batchSize) {
          yield batch;
          batch = [];
        }
        if (e.node?.kind === 'dir' && (maxDepth === 0 || stack.length < maxDepth)) {
          stack.push({ prefix: childNames, entries: await childrenOf(childPath, e.node), i: 0 });
        }
      }
    }
    if (batch.length > 0) yield batch;
  }

  /** The merged directory node at a path (ENOTDIR when it is something else). */
  async lookupDir(path: Buffer): Promise<DirNode> {
    const node = await this.lookup(path);
    if (node.kind !== 'dir') throw notDir(path);
    return node;
  }

  /** Releases what the layer sources hold open. */
  async close(): Promise<void> {
    await Promise.all(this.layers.map((l) => l.close()));
  }

  private async rootNode(): Promise<DirNode> {
    const cached = this.dirCache?.get('');
    if (cached) return cached;
    // Layer roots always merge, as overlayfs merges its layers' roots.
    const dirs = await Promise.all(this.layers.map((l) => l.root()));
    const node: DirNode = { kind: 'dir', dirs, st: dirs[0].st };
    this.dirCache?.set('', node);
    return node;
  }

  /**
   * Walks the path name by name. Symlinks in the middle are followed inside
   * the projection (an absolute target starts again at the layer root, ".."
   * never climbs above it), as a chroot would; the last name is not followed.
   */
  private async resolve(path: Buffer): Promise<Node> {
    return (await this.resolveAt(path)).node;
  }

  /** resolve, with the canonical names (real directories only) of where it ended. */
  private async resolveAt(path: Buffer): Promise<{ node: Node; canon: Buffer[] }> {
    const queue = splitPath(path);
    // Canonical names of the directory we are in: all real directories, no symlinks.
    let canon: Buffer[] = [];
    let current: Node = await this.rootNode();
    let hops = 0;
    let start = 0;
    if (this.dirCache && queue.length > 0) {
      // A directory cached at this very path is the answer (only real directories are cached, by the
      // path of real names that reaches them: a symlink's path never names one); else start at the
      // deepest cached ancestor instead of the root.
      const self = this.dirCache.get(joinPath(queue).toString('latin1'));
      if (self) return { node: self, canon: queue };
      for (let n = queue.length - 1; n > 0; n--) {
        const hit = this.dirCache.get(joinPath(queue.slice(0, n)).toString('latin1'));
        if (hit) {
          canon = queue.slice(0, n);
          current = hit;
          start = n;
          break;
        }
      }
    }
    let i = start;
    let names = queue;
    while (i < names.length) {
      const name = names[i++];
      if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) {
        // Only symlink targets bring ".." here (splitPath refuses it in requests).
        canon = canon.slice(0, -1);
        current = await this.dirAt(canon);
        continue;
      }
      if (name.length === 1 && name[0] === 0x2e) continue;
      if (current.kind !== 'dir') throw notDir(path);
      const child = await this.lookupChild(current, name);
      if (!child) throw enoent(path);
      if (child.kind === 'dir') {
        canon = [...canon, name];
        current = child;
        this.dirCache?.set(joinPath(canon).toString('latin1'), child);
        if (i === names.length) return { node: child, canon };
        continue;
      }
      if (i === names.length) return { node: child, canon };
      if (!isLinkStat(child.st)) throw notDir(path);
      if (++hops > MAX_SYMLINK_HOPS) {
        throw new StrataError(Errno.ELOOP, `too many levels of symbolic links: ${printable(path)}`, { path });
      }
      const target = await child.obj.layer.readlink(child.obj);
      const targetNames = rawNames(target);
      if (target[0] === 0x2f) {
        canon = [];
        current = await this.rootNode();
      }
      names = [...targetNames, ...names.slice(i)];
      i = 0;
    }
    return { node: current, canon };
  }

  private async dirAt(canon: Buffer[]): Promise<DirNode> {
    if (canon.length === 0) return this.rootNode();
    const cached = this.dirCache?.get(joinPath(canon).toString('latin1'));
    if (cached) return cached;
    return this.lookupDir(joinPath(canon));
  }

  /** One name in one merged directory, layer by layer from the top (see mergeDir for the same rules over a whole listing). */
  private async lookupChild(parent: DirNode, name: Buffer): Promise<Node | undefined> {
    const dirs: LayerObject[] = [];
    for (const d of parent.dirs) {
      const rules = d.layer.overlayRules;
      if (rules && isWhiteoutName(name)) break;
      const obj = await d.layer.lookup(d, name);
      if (!obj) {
        if (rules && (await d.layer.lookup(d, whiteoutNameFor(name)))) break;
        continue;
      }
      if (rules && isWhiteoutDevice(obj.st)) break;
      if (!isDirStat(obj.st)) {
        if (dirs.length === 0) return { kind: 'leaf', obj, st: obj.st } satisfies LeafNode;
        break;
      }
      if (dirs.length > 0 && (await isOpaqueDir(dirs[dirs.length - 1]))) break;
      dirs.push(obj);
    }
    return dirs.length > 0 ? { kind: 'dir', dirs, st: dirs[0].st } : undefined;
  }
}

function checkRange(path: Buffer, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw StrataError.invalid(`read offset ${offset} is not a non-negative integer`, path);
  if (!Number.isSafeInteger(length) || length < 0 || length > MAX_READ) {
    throw StrataError.invalid(`read length ${length} is not between 0 and ${MAX_READ}`, path);
  }
}

/** A source's error with the projection path it was about. */
function withPath(err: unknown, path: Buffer): StrataError {
  const e = StrataError.from(err);
  if (e.path) return e;
  return new StrataError(e.errno, `${e.message}: ${printable(path)}`, { path, code: e.code, cause: e.cause ?? err });
}

/** Names of a symlink target, keeping "." and ".." for the resolver to interpret. */
function rawNames(target: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= target.length; i++) {
    if (i === target.length || target[i] === 0x2f) {
      if (i > start) out.push(target.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}
