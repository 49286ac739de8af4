import { promises as fs, constants as fsc, type BigIntStats } from 'node:fs';
import { Errno, StrataError } from '@strata/errors';

/** Components of a store-relative path at most (a deeper one is not a store file a resolver names). */
const MAX_DEPTH = 64;
const NAME_MAX = 255;
/** Directories beneath the root held open at once (the parents of the files being read). */
const DEFAULT_OPEN_DIRS = 64;

interface HeldDir {
  opening: Promise<fs.FileHandle>;
  users: number;
  /** Out of the cache: closed when its last user is done. */
  dropped: boolean;
}

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
  private readonly dirs = new Map<string, HeldDir>();
  /** Opens made (directories and files), for tests and the benchmark. */
  opens = 0;

  private constructor(
    readonly dir: string,
    private readonly root: fs.FileHandle,
    private readonly maxDirs = DEFAULT_OPEN_DIRS,
  ) {}

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
    let held: HeldDir | undefined;
    try {
      let dirFd = this.root.fd;
      if (parts.length > 1) {
        held = this.acquire(parentRel, parts.slice(0, -1));
        dirFd = (await held.opening).fd;
      }
      this.opens++;
      const fh = await fs.open(under(dirFd, parts[parts.length - 1]), fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY);
      const st = await fh.stat({ bigint: true }).catch(async (err: unknown) => {
        await fh.close();
        throw err;
      });
      if (!st.isFile()) {
        await fh.close();
        throw StrataError.invalid(`store file ${rel} is not a regular file`);
      }
      return { fh, st };
    } catch (err) {
      // The directory held may be one replaced since: walked again next time.
      if (held) this.forgetDir(parentRel);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOTDIR') throw new StrataError(Errno.ELOOP, `store file ${rel}: a symlink or non-directory on its path (not followed)`);
      throw StrataError.from(err, `store file ${rel}`);
    } finally {
      if (held) this.release(held);
    }
  }

  /** Forgets the held directory of a store file (a file in it was not the one mapped: the next open walks from the root). */
  forgetDirOf(rel: string): void {
    const i = rel.lastIndexOf('/');
    if (i > 0) this.forgetDir(rel.slice(0, i));
  }

  /** Directories held open now. */
  get openDirs(): number {
    return this.dirs.size;
  }

  private acquire(key: string, parts: string[]): HeldDir {
    let h = this.dirs.get(key);
    if (h) {
      // Most recently used last.
      this.dirs.delete(key);
      this.dirs.set(key, h);
      h.users++;
      return h;
    }
    h = { opening: this.walk(parts), users: 1, dropped: false };
    const mine = h;
    this.dirs.set(key, mine);
    // A failed walk is not kept: its waiters get its error, the next open walks again.
    mine.opening.catch(() => {
      if (this.dirs.get(key) === mine) this.dirs.delete(key);
      mine.dropped = true;
    });
    this.trim();
    return mine;
  }

  private release(h: HeldDir): void {
    h.users--;
    if (h.dropped && h.users === 0) void this.closeDir(h);
  }

  private forgetDir(key: string): void {
    const h = this.dirs.get(key);
    if (!h) return;
    this.dirs.delete(key);
    h.dropped = true;
    if (h.users === 0) void this.closeDir(h);
  }

  private trim(): void {
    for (const [key, h] of this.dirs) {
      if (this.dirs.size <= this.maxDirs) return;
      if (h.users > 0) continue;
      this.dirs.delete(key);
      h.dropped = true;
      void this.closeDir(h);
    }
  }

  private async closeDir(h: HeldDir): Promise<void> {
    const fh = await h.opening.catch(() => undefined);
    await fh?.close().catch(() => undefined);
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
    const all = [...this.dirs.values()];
    this.dirs.clear();
    for (const h of all) h.dropped = true;
    await Promise.all(all.filter((h) => h.users === 0).map((h) => this.closeDir(h)));
    await this.root.close().catch(() => undefined);
  }
}
