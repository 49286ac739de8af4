import * as fsc from 'node:fs';
import { promises as fs, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import { Errno, StrataError } from '@strata/errors';
import { HeldHandles } from './held-handles';

/** Components of a store-relative path at most (a deeper one is not a store file a resolver names). */
const MAX_DEPTH = 64;
const NAME_MAX = 255;
/** Directories beneath the root held open at once (the parents of the files being read, and theirs). */
const DEFAULT_OPEN_DIRS = 64;
const DIR_FLAGS = fsc.constants.O_RDONLY | fsc.constants.O_DIRECTORY | fsc.constants.O_NOFOLLOW;
/** O_NONBLOCK so that a FIFO put in a file's place cannot hang the open; it is then refused. */
const FILE_FLAGS = fsc.constants.O_RDONLY | fsc.constants.O_NOFOLLOW | fsc.constants.O_NONBLOCK | fsc.constants.O_NOCTTY;

/**
 * statfs(2) f_type of filesystems whose opens and stats are a few
 * microseconds of the caller's own thread: ext2/3/4, XFS, btrfs, tmpfs,
 * f2fs, ZFS, overlayfs, squashfs, bcachefs. A network filesystem's (NFS,
 * CephFS, SMB, FUSE, 9p, ...) may wait on its server, so there every open
 * and stat goes through the thread pool.
 */
const LOCAL_FILESYSTEMS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010, 0x2fc12fc1, 0x794c7630, 0x73717368, 0xca451a4e]);

const openFd = promisify(fsc.open);
const fstatBig = (fd: number): Promise<BigIntStats> => promisify(fsc.fstat)(fd, { bigint: true }) as Promise<BigIntStats>;
const closeFd = promisify(fsc.close);

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

/** A directory held open beneath the root; `local`: on the root's own local filesystem, so opened and stated in line. */
interface Dir {
  fd: number;
  local: boolean;
}

/** A store file opened beneath the root: its descriptor (the caller's to close) and its fstat. */
export interface OpenedFd {
  fd: number;
  st: BigIntStats;
  /** Closed in line (a local filesystem) rather than on the thread pool. */
  local: boolean;
}

/** Closes a descriptor opened here: in line where the open was, else on the thread pool. */
export function closeOpened(fd: number, local: boolean): Promise<void> {
  if (!local) return closeFd(fd);
  try {
    fsc.closeSync(fd);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

/**
 * A directory held open: the root every store file is opened beneath.
 * Node has no openat(2), let alone openat2(RESOLVE_BENEATH); the same
 * guarantee comes from a walk one component at a time, each opened through
 * /proc/self/fd of its parent with O_NOFOLLOW (a symlink anywhere on the
 * way fails with ELOOP instead of leading out) and O_DIRECTORY on the way
 * down. ".." never gets here (storeComponents), so nothing climbs above
 * the root, whatever is renamed while the walk runs.
 *
 * On a local filesystem the opens and fstats are made in line: one costs
 * about 10 µs of this thread, a trip through the thread pool (a promise, a
 * FileHandle, a wake-up) over 100 µs.
 */
export class BeneathRoot {
  /**
   * Directories opened by the walk and kept (least recently used closed
   * first, never one an open is using): a file of a directory already open
   * is one open from its parent's fd, a new directory one open from its
   * nearest held ancestor's. A directory renamed since is still the one the
   * walk found; a file opened in it is checked against its map like any
   * other.
   */
  private readonly dirs: HeldHandles<Dir>;
  /** Opens made (directories and files), for tests and the benchmark. */
  opens = 0;

  private constructor(
    readonly dir: string,
    private readonly root: Dir,
    /** The root's device: a directory on another (a filesystem mounted inside the store) is not known to be local. */
    private readonly rootDev: bigint,
    maxDirs = DEFAULT_OPEN_DIRS,
  ) {
    this.dirs = new HeldHandles(
      maxDirs,
      (key) => this.openDir(key),
      (d) => closeOpened(d.fd, d.local),
    );
  }

  /** `inLine`: whether opens are made in line; by default, where the store's filesystem is a local one. */
  static async open(dir: string, maxDirs = DEFAULT_OPEN_DIRS, inLine?: boolean): Promise<BeneathRoot> {
    const proc = await fs.stat('/proc/self/fd').catch(() => undefined);
    if (!proc?.isDirectory()) throw StrataError.precondition('a store view needs /proc (it opens store files beneath the store root through /proc/self/fd)', Errno.ENOENT);
    let fd: number;
    let st: BigIntStats;
    let local: boolean;
    try {
      fd = await openFd(dir, fsc.constants.O_RDONLY | fsc.constants.O_DIRECTORY);
    } catch (err) {
      throw StrataError.from(err, `store view ${dir}`);
    }
    try {
      st = await fstatBig(fd);
      local = inLine ?? LOCAL_FILESYSTEMS.has(Number((await fs.statfs(dir)).type));
    } catch (err) {
      await closeFd(fd).catch(() => undefined);
      throw StrataError.from(err, `store view ${dir}`);
    }
    return new BeneathRoot(dir, { fd, local }, st.dev, maxDirs);
  }

  /** Whether the root is on a local filesystem (opens made in line). */
  get local(): boolean {
    return this.root.local;
  }

  /**
   * A regular file beneath the root, opened read-only without following a
   * symlink anywhere on its path, with its fstat, as a FileHandle.
   */
  async openFile(rel: string): Promise<{ fh: fs.FileHandle; st: BigIntStats }> {
    return this.beneath(rel, async (dir, name) => {
      this.opens++;
      const fh = await fs.open(under(dir.fd, name), FILE_FLAGS);
      try {
        const st = dir.local ? fsc.fstatSync(fh.fd, { bigint: true }) : await fh.stat({ bigint: true });
        if (!st.isFile()) throw StrataError.invalid(`store file ${rel} is not a regular file`);
        return { fh, st };
      } catch (err) {
        await fh.close().catch(() => undefined);
        throw err;
      }
    });
  }

  /**
   * The same file as a bare descriptor (the caller closes it with
   * closeOpened): on a local filesystem opened and stated in line, with
   * no promise or FileHandle of its own.
   */
  async openFd(rel: string): Promise<OpenedFd> {
    return this.beneath(rel, async (dir, name) => {
      this.opens++;
      const fd = dir.local ? fsc.openSync(under(dir.fd, name), FILE_FLAGS) : await openFd(under(dir.fd, name), FILE_FLAGS);
      try {
        const st = dir.local ? fsc.fstatSync(fd, { bigint: true }) : await fstatBig(fd);
        if (!st.isFile()) throw StrataError.invalid(`store file ${rel} is not a regular file`);
        return { fd, st, local: dir.local };
      } catch (err) {
        await closeOpened(fd, dir.local).catch(() => undefined);
        throw err;
      }
    });
  }

  /** Runs `open` in the held parent directory of `rel`; errors as StrataErrors, a symlink or non-directory on the way as ELOOP. */
  private async beneath<T>(rel: string, open: (dir: Dir, name: string) => Promise<T>): Promise<T> {
    const parts = storeComponents(rel);
    const name = parts[parts.length - 1];
    try {
      return await (parts.length > 1 ? this.dirs.use(parts.slice(0, -1).join('/'), (dir) => open(dir, name)) : open(this.root, name));
    } catch (err) {
      // The directories held may be ones replaced since: walked again next time.
      this.forgetDirOf(rel);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOTDIR') throw new StrataError(Errno.ELOOP, `store file ${rel}: a symlink or non-directory on its path (not followed)`);
      throw StrataError.from(err, `store file ${rel}`);
    }
  }

  /** Forgets the held directories of a store file, its parent and every ancestor (one may have been replaced: the next open walks from the root). */
  forgetDirOf(rel: string): void {
    for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) this.dirs.forget(rel.slice(0, i));
  }

  /** Directories held open now. */
  get openDirs(): number {
    return this.dirs.size;
  }

  /** A directory beneath the root: O_NOFOLLOW | O_DIRECTORY from its parent's fd, the parent held (and opened the same way) first. */
  private async openDir(key: string): Promise<Dir> {
    const cut = key.lastIndexOf('/');
    const name = cut < 0 ? key : key.slice(cut + 1);
    return cut < 0 ? this.openDirIn(this.root, name) : this.dirs.use(key.slice(0, cut), (parent) => this.openDirIn(parent, name));
  }

  private async openDirIn(parent: Dir, name: string): Promise<Dir> {
    this.opens++;
    if (!parent.local) return { fd: await openFd(under(parent.fd, name), DIR_FLAGS), local: false };
    const fd = fsc.openSync(under(parent.fd, name), DIR_FLAGS);
    try {
      // A filesystem mounted inside the store is not known to be local.
      return { fd, local: fsc.fstatSync(fd, { bigint: true }).dev === this.rootDev };
    } catch (err) {
      fsc.closeSync(fd);
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.dirs.closeAll();
    await closeOpened(this.root.fd, this.root.local).catch(() => undefined);
  }
}
