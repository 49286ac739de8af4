import { lstatSync, promises as fs, realpathSync, type Dirent } from 'node:fs';
import { Errno, StrataError } from '@strata/errors';
import type { FileType } from '@strata/posix';
import { childPath, printable, toPathBuffer } from '../paths';
import { FdCache, closeQuietly, openNoFollow } from './fd-cache';
import { getXattr, listXattrs, XattrError } from './host-xattr';
import type { LayerObject, LayerSource, SourceDirent, SourceStat, StatFs, StoreFileRef } from './layer-source';
import { isRegStat } from '../attr';
import { readFdAt, readFdInto } from './read-at';
import { dirExtentMap, type ExtentRun } from './extent-map';

/**
 * Entries looked up between two yields to the event loop. Synchronous lstat
 * costs ~5 µs on a warm local store against ~17 µs through the thread pool;
 * slicing keeps a 100,000-entry directory from starving other requests.
 */
const LSTAT_SLICE = 512;
const SLASH = 0x2f;

export interface DirSourceOptions {
  /**
   * Root of the image store: locations are relative to it, because replicas
   * may mount a shared store at different paths. Defaults to the layer root.
   */
  storeRoot?: string | Buffer;
  /** The folder may change under us (a LIVE layer): no open file is reused. */
  live?: boolean;
  /** Open files shared with other sources, so one bound holds for a whole store. */
  fdCache?: FdCache;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A file of a layer the resolver may not read. Serving around it would show
 * a wrong tree (a name missing, a directory without its entries), so the
 * request fails with a line that says what the resolver lacks.
 */
function storeError(err: unknown, what: string, where: Buffer, otherwise: () => StrataError = () => StrataError.from(err, what)): StrataError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') {
    return StrataError.precondition(
      `the resolver may not read ${printable(where)} (${what}: permission denied); it needs read access to every file of the store (run it as the store's owner or with CAP_DAC_READ_SEARCH)`,
      Errno.EACCES,
    );
  }
  return otherwise();
}

function lstatQuiet(p: Buffer): SourceStat | undefined {
  try {
    return lstatSync(p, { bigint: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw storeError(err, 'lstat', p);
    return undefined;
  }
}

function direntType(e: Dirent<Buffer>): FileType {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (e.isSymbolicLink()) return 'symlink';
  if (e.isFIFO()) return 'fifo';
  if (e.isSocket()) return 'socket';
  if (e.isBlockDevice()) return 'block';
  if (e.isCharacterDevice()) return 'char';
  return 'unknown';
}

/**
 * A `dir:` layer: a folder of the image store, read with the host's own
 * system calls. Objects are named by their real path.
 */
export class DirSource implements LayerSource {
  readonly identity: string;
  readonly overlayRules = true;
  readonly rootPath: Buffer;
  private readonly storeRoot: Buffer;
  private readonly fds: FdCache | undefined;
  private readonly sharedFds: boolean;

  constructor(root: string | Buffer, options: DirSourceOptions = {}) {
    this.rootPath = toPathBuffer(root);
    this.storeRoot = options.storeRoot === undefined ? this.rootPath : toPathBuffer(options.storeRoot);
    this.identity = `dir:${this.rootPath.toString('latin1')}`;
    this.fds = options.live ? undefined : (options.fdCache ?? new FdCache());
    this.sharedFds = options.fdCache !== undefined;
  }

  /** A source for a folder given by any path: symlinks in it resolved once, here. */
  static real(root: string | Buffer, options: DirSourceOptions = {}): DirSource {
    return new DirSource(realpathSync(toPathBuffer(root), { encoding: 'buffer' }), options);
  }

  async root(): Promise<LayerObject> {
    const st = await fs.lstat(this.rootPath, { bigint: true });
    return { layer: this, ref: this.rootPath, st };
  }

  async lookup(dir: LayerObject, name: Buffer): Promise<LayerObject | undefined> {
    const real = childPath(this.pathOf(dir), name);
    try {
      return { layer: this, ref: real, st: await fs.lstat(real, { bigint: true }) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG') return undefined;
      throw storeError(err, 'lstat', real, () => StrataError.from(err, 'lstat', real));
    }
  }

  async list(dir: LayerObject): Promise<SourceDirent[]> {
    let entries: Dirent<Buffer>[];
    try {
      entries = await fs.readdir(this.pathOf(dir), { withFileTypes: true, encoding: 'buffer' });
    } catch (err) {
      // A directory that vanished from a LIVE layer between lookup and readdir contributes nothing.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw storeError(err, 'readdir', this.pathOf(dir), () => StrataError.from(err, `readdir ${printable(this.pathOf(dir))}`));
    }
    return entries.map((e) => ({ name: e.name, type: direntType(e) }));
  }

  async lookupMany(dir: LayerObject, names: readonly Buffer[]): Promise<(LayerObject | undefined)[]> {
    const base = this.pathOf(dir);
    const out: (LayerObject | undefined)[] = [];
    for (let i = 0; i < names.length; i++) {
      if (i > 0 && i % LSTAT_SLICE === 0) await yieldToLoop();
      const real = childPath(base, names[i]);
      const st = lstatQuiet(real);
      out.push(st ? { layer: this, ref: real, st } : undefined);
    }
    return out;
  }

  async readlink(obj: LayerObject): Promise<Buffer> {
    try {
      return await fs.readlink(this.pathOf(obj), { encoding: 'buffer' });
    } catch (err) {
      throw StrataError.from(err, 'readlink');
    }
  }

  read(obj: LayerObject, offset: number, length: number): Promise<Buffer> {
    return this.readReal(this.pathOf(obj), offset, length);
  }

  async listXattrs(obj: LayerObject): Promise<string[]> {
    try {
      return listXattrs(this.pathOf(obj));
    } catch (err) {
      throw xattrError(err, 'llistxattr');
    }
  }

  async getXattr(obj: LayerObject, name: string): Promise<Buffer | undefined> {
    try {
      return getXattr(this.pathOf(obj), name);
    } catch (err) {
      throw xattrError(err, `lgetxattr ${name}`);
    }
  }

  async statfs(): Promise<StatFs> {
    const s = await fs.statfs(this.rootPath, { bigint: true });
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

  locate(obj: LayerObject): Buffer {
    const real = this.pathOf(obj);
    const root = this.storeRoot;
    if (real.length > root.length && real[root.length] === SLASH && real.subarray(0, root.length).equals(root)) {
      return real.subarray(root.length + 1);
    }
    if (real.equals(root)) return Buffer.alloc(0);
    throw StrataError.io(`layer data ${printable(real)} is outside the store`);
  }

  readLocated(location: Buffer, offset: number, length: number): Promise<Buffer> {
    const real = this.locatedPath(location);
    return real instanceof StrataError ? Promise.reject(real) : this.readReal(real, offset, length);
  }

  /** readLocated into the caller's buffer (from its start, at least `length` long): the count read, short only at end of file. */
  readLocatedInto(location: Buffer, into: Buffer, offset: number, length: number): Promise<number> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || length > into.length) {
      return Promise.reject(StrataError.invalid(`read of ${length} bytes at ${offset} into a buffer of ${into.length}`));
    }
    const real = this.locatedPath(location);
    return real instanceof StrataError ? Promise.reject(real) : this.withFd(real, (fd) => readFdInto(fd, into, offset, length));
  }

  /** The store path a cached location names; locations come back from a shared cache: never let one climb out of the store. */
  private locatedPath(location: Buffer): Buffer | StrataError {
    if (location.length > 0 && (location[0] === SLASH || hasDotDot(location))) {
      return StrataError.io(`cached location ${printable(location)} is not inside the store`);
    }
    return location.length === 0 ? this.storeRoot : Buffer.concat([this.storeRoot, Buffer.from('/'), location]);
  }

  async close(): Promise<void> {
    // A shared cache belongs to whoever shares it.
    if (!this.sharedFds) this.fds?.clear();
  }

  /** The file itself, as the store holds it. */
  extentMap(obj: LayerObject, offset: number, length: number): Promise<ExtentRun[]> {
    return dirExtentMap(this.pathOf(obj), offset, length);
  }

  /**
   * A sealed folder's regular file is one store file whole: its real path
   * (the layer root is a real path inside the store, and every name below
   * it was found by lstat as a directory, never followed) less the store
   * root, with the lstat that found it. A LIVE folder's objects may have
   * changed since they were found: none.
   */
  storeFile(obj: LayerObject): StoreFileRef | undefined {
    if (!this.fds || !isRegStat(obj.st)) return undefined;
    const real = this.pathOf(obj);
    const root = this.storeRoot;
    if (real.length <= root.length + 1 || real[root.length] !== SLASH || !real.subarray(0, root.length).equals(root)) return undefined;
    return { path: real.subarray(root.length + 1), st: obj.st };
  }

  private pathOf(obj: LayerObject): Buffer {
    if (obj.layer !== this || typeof obj.ref === 'number') throw StrataError.io('object handed to the wrong layer source');
    return obj.ref;
  }

  private readReal(real: Buffer, offset: number, length: number): Promise<Buffer> {
    return this.withFd(real, (fd) => readFdAt(fd, offset, length));
  }

  /** `read` on a descriptor of the store file at `real` (from the shared cache, or opened for it); its failure as a StrataError. */
  private async withFd<T>(real: Buffer, read: (fd: number) => Promise<T>): Promise<T> {
    if (!this.fds) {
      let fd: number;
      try {
        // O_NOFOLLOW: a LIVE layer could swap the file for a symlink after lookup.
        fd = await openNoFollow(real);
      } catch (err) {
        throw storeError(err, 'open', real);
      }
      try {
        return await read(fd);
      } catch (err) {
        throw StrataError.from(err, 'read');
      } finally {
        closeQuietly(fd);
      }
    }
    const file = await this.fds.acquire(real).catch((err: unknown) => {
      throw storeError(err, 'open', real);
    });
    try {
      return await read(file.fd);
    } catch (err) {
      throw StrataError.from(err, 'read');
    } finally {
      file.release();
    }
  }
}

function hasDotDot(location: Buffer): boolean {
  let start = 0;
  for (let i = 0; i <= location.length; i++) {
    if (i === location.length || location[i] === SLASH) {
      if (i - start === 2 && location[start] === 0x2e && location[start + 1] === 0x2e) return true;
      start = i + 1;
    }
  }
  return false;
}

function xattrError(err: unknown, what: string): StrataError {
  if (err instanceof XattrError) return new StrataError(err.errno, `${what}: ${err.message}`);
  return StrataError.from(err, what);
}
