import { promises as fs, constants as fsc, type BigIntStats } from 'node:fs';
import { Errno, StrataError } from '@strata/errors';
import { HeldHandles } from './held-handles';

/** Components of a store-relative path at most (a deeper one is not a store file a resolver names). */
const MAX_DEPTH = 64;
const NAME_MAX = 255;
/** Directories beneath the root held open at once (the parents of the files being read). */
const DEFAULT_OPEN_DIRS = 64;

/**
 * A store-relative path as components: no leading slash, no empty, "." or
 * ".." component, no NUL. What the resolver sends is checked here, not
 * trusted: a path that could climb out of the store is refused outright.
 */
export function storeComponents(rel: string): string[] {
  const parts = rel.split('/');
  if (rel === '' || parts.length > MAX_DEPTH || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0') || Buffer.byteLength(p) > NAME_MAX)) {
    throw StrataError.invalid(`store path ${JSON.stringify(rel.slice(0, 200))} is not a plain path inside the store`);
  }
  return parts;
}

/** `/proc/self/fd/N/NAME`: NAME looked up in the directory fd N has open, as openat(N, NAME) would (the magic link is only the prefix). */
function under(dirFd: number, name: string): string {
  return `/proc/self/fd/${dirFd}/${name}`;
}

/**
 * A directory held open: the root every store file is opened beneath.
 * Node has no openat(2), let alone openat2(RESOLVE_BENEATH); the same
 * guarantee comes from a walk one component at a time, each opened through
 * /proc/self/fd of its parent with O_NOFOLLOW (a symlink anywhere on the
 * way fails with ELOOP instead of leading out) and O_DIRECTORY on the way
 * down. ".." never gets here (storeComponents), so nothing climbs above
 * the root, whatever is renamed while the walk runs.
 */
export class BeneathRoot {
  /**
   * Parent directories of store files, opened by the same walk and kept
   * (least recently used closed first, never one an open is using): a
   * file of a directory already open is one open from its parent's fd.
   * A directory renamed since is still the one the walk found; a file
   * opened in it is checked against its map like any other.
   */
  private readonly dirs: HeldHandles<fs.FileHandle>;
  /** Opens made (directories and files), for tests and the benchmark. */
  opens = 0;

  private constructor(
    readonly dir: string,
    private readonly root: fs.FileHandle,
    maxDirs = DEFAULT_OPEN_DIRS,
  ) {
    this.dirs = new HeldHandles(maxDirs, (key) => this.walk(key.split('/')), (fh) => fh.close());
  }

  static async open(dir: string, maxDirs = DEFAULT_OPEN_DIRS): Promise<BeneathRoot> {
    const proc = await fs.stat('/proc/self/fd').catch(() => undefined);
    if (!proc?.isDirectory()) throw StrataError.precondition('a store view needs /proc (it opens store files beneath the store root through /proc/self/fd)', Errno.ENOENT);
    let root: fs.FileHandle;
    try {
      root = await fs.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
    } catch (err) {
      throw StrataError.from(err, `store view ${dir}`);
    }
    return new BeneathRoot(dir, root, maxDirs);
  }

  /**
   * A regular file beneath the root, opened read-only without following a
   * symlink anywhere on its path, with its fstat. O_NONBLOCK so that a FIFO
   * put in a file's place cannot hang the open; it is then refused.
   */
  async openFile(rel: string): Promise<{ fh: fs.FileHandle; st: BigIntStats }> {
    const parts = storeComponents(rel);
    const parentRel = parts.slice(0, -1).join('/');
    const name = parts[parts.length - 1];
    try {
      return await (parts.length > 1 ? this.dirs.use(parentRel, (dir) => this.openIn(dir.fd, rel, name)) : this.openIn(this.root.fd, rel, name));
    } catch (err) {
      // The directory held may be one replaced since: walked again next time.
      if (parts.length > 1) this.dirs.forget(parentRel);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOTDIR') throw new StrataError(Errno.ELOOP, `store file ${rel}: a symlink or non-directory on its path (not followed)`);
      throw StrataError.from(err, `store file ${rel}`);
    }
  }

  private async openIn(dirFd: number, rel: string, name: string): Promise<{ fh: fs.FileHandle; st: BigIntStats }> {
    this.opens++;
    const fh = await fs.open(under(dirFd, name), fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY);
    const st = await fh.stat({ bigint: true }).catch(async (err: unknown) => {
      await fh.close();
      throw err;
    });
    if (!st.isFile()) {
      await fh.close();
      throw StrataError.invalid(`store file ${rel} is not a regular file`);
    }
    return { fh, st };
  }

  /** Forgets the held directory of a store file (a file in it was not the one mapped: the next open walks from the root). */
  forgetDirOf(rel: string): void {
    const i = rel.lastIndexOf('/');
    if (i > 0) this.dirs.forget(rel.slice(0, i));
  }

  /** Directories held open now. */
  get openDirs(): number {
    return this.dirs.size;
  }

  /** A directory beneath the root, one component at a time, each O_NOFOLLOW | O_DIRECTORY from its parent's fd. */
  private async walk(parts: string[]): Promise<fs.FileHandle> {
    let dir: fs.FileHandle | undefined;
    try {
      for (const part of parts) {
        this.opens++;
        const next: fs.FileHandle = await fs.open(under((dir ?? this.root).fd, part), fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
        await dir?.close().catch(() => undefined);
        dir = next;
      }
      if (!dir) throw StrataError.invalid('a store directory without components');
      return dir;
    } catch (err) {
      await dir?.close().catch(() => undefined);
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.dirs.closeAll();
    await this.root.close().catch(() => undefined);
  }
}
