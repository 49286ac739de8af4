import { promises as fs, constants as fsc, type BigIntStats } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { Errno, GrpcCode, StrataError, fromSystemError, isStrataError } from '@strata/errors';
import { Attr } from './attr';
import { mergeDir, type MergedEntry } from './merge';
import { DirNode, LeafNode, Node, attrOf, realPathOf } from './node';
import { isOpaqueDir, isOverlayPrivateXattr, isWhiteoutDevice, isWhiteoutName, visibleXattrNames, whiteoutNameFor } from './overlay-rules';
import { childPath, joinPath, printable, splitPath, toPathBuffer } from './paths';
import { XattrError, getXattr } from './xattr';
import { readAt } from './read-at';

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

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

export interface ProjectionOptions {
  /** Resolved directories kept in memory (0: none). Paths are resolved from the nearest cached ancestor. */
  dirCacheEntries?: number;
  /** How long a cached directory stays valid; leave unset for sealed chains, which never change. */
  dirCacheTtlMs?: number;
}

function enoent(path: Buffer): StrataError {
  return new StrataError(Errno.ENOENT, `no such file or directory: ${printable(path)}`, { path });
}

function notDir(path: Buffer): StrataError {
  return new StrataError(Errno.ENOTDIR, `not a directory: ${printable(path)}`, { path });
}

async function lstatOrUndefined(real: Buffer): Promise<BigIntStats | undefined> {
  try {
    return await fs.lstat(real, { bigint: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG') return undefined;
    throw fromSystemError(err, 'lstat');
  }
}

/**
 * The merged, read-only view of one layer chain: the delta traversal of
 * DESIGN.md §3 over `dir:` layers. It answers one path at a time, touching
 * only the directories on that path, never the whole tree.
 */
export class Projection {
  /** Real layer roots, topmost first. */
  readonly roots: Buffer[];
  private readonly dirCache: LRUCache<string, DirNode> | undefined;

  constructor(roots: readonly (string | Buffer)[], options: ProjectionOptions = {}) {
    if (roots.length === 0) throw new StrataError(Errno.EINVAL, 'a projection needs at least one layer');
    this.roots = roots.map(toPathBuffer);
    const entries = options.dirCacheEntries ?? 4096;
    this.dirCache =
      entries > 0
        ? new LRUCache<string, DirNode>({ max: entries, ...(options.dirCacheTtlMs ? { ttl: options.dirCacheTtlMs } : {}) })
        : undefined;
  }

  /** Resolves a path to the node that supplies it. The last component is never followed. */
  async lookup(path: Buffer | string): Promise<Node> {
    const p = toPathBuffer(path);
    try {
      return await this.resolve(p);
    } catch (err) {
      throw isStrataError(err) ? err : fromSystemError(err, `lookup ${printable(p)}`, p);
    }
  }

  async stat(path: Buffer | string): Promise<Attr> {
    return attrOf(await this.lookup(path));
  }

  /** Entries of a merged directory with their attributes, sorted bytewise. */
  async readdir(path: Buffer | string): Promise<DirEntry[]> {
    return (await this.readdirNodes(path)).map((e) => ({ name: e.name, attr: attrOf(e.node) }));
  }

  /** The same entries with the node a lookup of each would give (callers cache them instead of looking names up again). */
  async readdirNodes(path: Buffer | string): Promise<MergedEntry[]> {
    return mergeDir(await this.lookupDir(toPathBuffer(path)));
  }

  async read(path: Buffer | string, offset: number, length: number): Promise<ReadResult> {
    const p = toPathBuffer(path);
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new StrataError(Errno.EINVAL, `read offset ${offset} is not a non-negative integer`, { path: p, code: GrpcCode.INVALID_ARGUMENT });
    }
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_READ) {
      throw new StrataError(Errno.EINVAL, `read length ${length} is not between 0 and ${MAX_READ}`, { path: p, code: GrpcCode.INVALID_ARGUMENT });
    }
    const node = await this.lookup(p);
    if (node.kind === 'dir') throw new StrataError(Errno.EISDIR, `is a directory: ${printable(p)}`, { path: p });
    if (!node.st.isFile()) {
      throw new StrataError(Errno.EINVAL, `not a regular file: ${printable(p)}`, { path: p, code: GrpcCode.INVALID_ARGUMENT });
    }
    const size = Number(node.st.size);
    if (length === 0 || offset >= size) return { data: Buffer.alloc(0), eof: true };
    const want = Math.min(length, size - offset);
    let fh: fs.FileHandle;
    try {
      // O_NOFOLLOW: a LIVE layer could swap the file for a symlink after lookup.
      fh = await fs.open(node.real, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    } catch (err) {
      throw fromSystemError(err, `open ${printable(p)}`, p);
    }
    try {
      const data = await readAt(fh, offset, want);
      return { data, eof: offset + data.length >= size };
    } catch (err) {
      throw fromSystemError(err, `read ${printable(p)}`, p);
    } finally {
      await fh.close();
    }
  }

  /** A symlink's target, verbatim. */
  async readlink(path: Buffer | string): Promise<Buffer> {
    const p = toPathBuffer(path);
    const node = await this.lookup(p);
    if (node.kind === 'dir' || !node.st.isSymbolicLink()) {
      throw new StrataError(Errno.EINVAL, `not a symlink: ${printable(p)}`, { path: p, code: GrpcCode.INVALID_ARGUMENT });
    }
    try {
      return await fs.readlink(node.real, { encoding: 'buffer' });
    } catch (err) {
      throw fromSystemError(err, `readlink ${printable(p)}`, p);
    }
  }

  /** Extended attribute names, overlay-private ones left out. */
  async listXattr(path: Buffer | string): Promise<string[]> {
    const p = toPathBuffer(path);
    const node = await this.lookup(p);
    try {
      return visibleXattrNames(realPathOf(node));
    } catch (err) {
      throw this.xattrError(err, p);
    }
  }

  async getXattr(path: Buffer | string, name: string): Promise<Buffer> {
    const p = toPathBuffer(path);
    const node = await this.lookup(p);
    let value: Buffer | undefined;
    try {
      value = isOverlayPrivateXattr(name) ? undefined : getXattr(realPathOf(node), name);
    } catch (err) {
      throw this.xattrError(err, p);
    }
    if (value === undefined) {
      throw new StrataError(Errno.ENODATA, `no attribute ${name} on ${printable(p)}`, { path: p, code: GrpcCode.NOT_FOUND });
    }
    return value;
  }

  /** Filesystem statistics of the topmost layer's filesystem, as overlayfs reports them. */
  async statfs(): Promise<StatFs> {
    const s = await fs.statfs(this.roots[0], { bigint: true });
    return {
      bsize: Number(s.bsize),
      frsize: Number(s.bsize),
      blocks: Number(s.blocks),
      bfree: Number(s.bfree),
      bavail: Number(s.bavail),
      files: Number(s.files),
      ffree: Number(s.ffree),
      namemax: 255,
    };
  }

  /**
   * The subtree under a path, depth first, parents before children and
   * siblings sorted bytewise, in batches. The root of the walk comes first.
   */
  async *walk(path: Buffer | string, options: WalkOptions = {}): AsyncGenerator<WalkEntry[]> {
    const rootPath = toPathBuffer(path);
    const names = splitPath(rootPath);
    const batchSize = options.batchSize ?? 512;
    const maxDepth = options.maxDepth ?? 0;
    const root = await this.lookup(rootPath);
    let batch: WalkEntry[] = [];
    const emit = async (p: Buffer, node: Node): Promise<void> => {
      const entry: WalkEntry = { path: p, attr: attrOf(node) };
      if (options.includeLinkTargets && node.kind === 'leaf' && node.st.isSymbolicLink()) {
        entry.linkTarget = await fs.readlink(node.real, { encoding: 'buffer' }).catch(() => Buffer.alloc(0));
      }
      batch.push(entry);
    };
    await emit(joinPath(names), root);
    if (root.kind === 'dir') {
      // Explicit stack of iterators so a deep tree cannot overflow the call stack.
      const stack: { prefix: Buffer[]; entries: { name: Buffer; node: Node }[]; i: number }[] = [];
      stack.push({ prefix: names, entries: await mergeDir(root), i: 0 });
      while (stack.length > 0) {
        const top = stack[stack.length - 1];
        if (top.i >= top.entries.length) {
          stack.pop();
          continue;
        }
        const { name, node } = top.entries[top.i++];
        const childNames = [...top.prefix, name];
        await emit(joinPath(childNames), node);
        if (batch.length >= batchSize) {
          yield batch;
          batch = [];
        }
        if (node.kind === 'dir' && (maxDepth === 0 || stack.length < maxDepth)) {
          stack.push({ prefix: childNames, entries: await mergeDir(node), i: 0 });
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

  private xattrError(err: unknown, path: Buffer): StrataError {
    if (err instanceof XattrError) return new StrataError(err.errno, `${err.message}: ${printable(path)}`, { path });
    return fromSystemError(err, `xattr ${printable(path)}`, path);
  }

  private async rootNode(): Promise<DirNode> {
    const cached = this.dirCache?.get('');
    if (cached) return cached;
    const st = await fs.lstat(this.roots[0], { bigint: true });
    const node: DirNode = { kind: 'dir', dirs: this.roots, st };
    this.dirCache?.set('', node);
    return node;
  }

  /**
   * Walks the path name by name. Symlinks in the middle are followed inside
   * the projection (an absolute target starts again at the layer root, ".."
   * never climbs above it), as a chroot would; the last name is not followed.
   */
  private async resolve(path: Buffer): Promise<Node> {
    const queue = splitPath(path);
    // Canonical names of the directory we are in: all real directories, no symlinks.
    let canon: Buffer[] = [];
    let current: Node = await this.rootNode();
    let hops = 0;
    let start = 0;
    if (this.dirCache && queue.length > 1) {
      // Start at the deepest cached ancestor instead of the root.
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
      if (i === names.length) return child;
      if (child.kind === 'dir') {
        canon = [...canon, name];
        current = child;
        this.dirCache?.set(joinPath(canon).toString('latin1'), child);
        continue;
      }
      if (!child.st.isSymbolicLink()) throw notDir(path);
      if (++hops > MAX_SYMLINK_HOPS) {
        throw new StrataError(Errno.ELOOP, `too many levels of symbolic links: ${printable(path)}`, { path });
      }
      const target = await fs.readlink(child.real, { encoding: 'buffer' });
      const targetNames = rawNames(target);
      if (target[0] === 0x2f) {
        canon = [];
        current = await this.rootNode();
      }
      names = [...targetNames, ...names.slice(i)];
      i = 0;
    }
    return current;
  }

  private async dirAt(canon: Buffer[]): Promise<DirNode> {
    if (canon.length === 0) return this.rootNode();
    const cached = this.dirCache?.get(joinPath(canon).toString('latin1'));
    if (cached) return cached;
    return this.lookupDir(joinPath(canon));
  }

  /** One name in one merged directory, layer by layer from the top (see mergeDir for the same rules over a whole listing). */
  private async lookupChild(parent: DirNode, name: Buffer): Promise<Node | undefined> {
    if (isWhiteoutName(name)) return undefined;
    const dirs: Buffer[] = [];
    let top: BigIntStats | undefined;
    for (const d of parent.dirs) {
      const real = childPath(d, name);
      const st = await lstatOrUndefined(real);
      if (!st) {
        if (await lstatOrUndefined(childPath(d, whiteoutNameFor(name)))) break;
        continue;
      }
      if (isWhiteoutDevice(st)) break;
      if (!st.isDirectory()) {
        if (dirs.length === 0) return { kind: 'leaf', real, st } satisfies LeafNode;
        break;
      }
      if (dirs.length > 0 && (await isOpaqueDir(dirs[dirs.length - 1]))) break;
      dirs.push(real);
      top ??= st;
    }
    return top ? { kind: 'dir', dirs, st: top } : undefined;
  }
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
