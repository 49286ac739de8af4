import { promises as fs, constants as fsc, type BigIntStats } from 'node:fs';
import { Errno, StrataError } from '@strata/errors';

/** Components of a store-relative path at most (a deeper one is not a store file a resolver names). */
const MAX_DEPTH = 64;
const NAME_MAX = 255;

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
  private constructor(
    readonly dir: string,
    private readonly root: fs.FileHandle,
  ) {}

  static async open(dir: string): Promise<BeneathRoot> {
    const proc = await fs.stat('/proc/self/fd').catch(() => undefined);
    if (!proc?.isDirectory()) throw StrataError.precondition('a store view needs /proc (it opens store files beneath the store root through /proc/self/fd)', Errno.ENOENT);
    let root: fs.FileHandle;
    try {
      root = await fs.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
    } catch (err) {
      throw StrataError.from(err, `store view ${dir}`);
    }
    return new BeneathRoot(dir, root);
  }

  /**
   * A regular file beneath the root, opened read-only without following a
   * symlink anywhere on its path, with its fstat. O_NONBLOCK so that a FIFO
   * put in a file's place cannot hang the open; it is then refused.
   */
  async openFile(rel: string): Promise<{ fh: fs.FileHandle; st: BigIntStats }> {
    const parts = storeComponents(rel);
    let dir = this.root;
    const opened: fs.FileHandle[] = [];
    try {
      for (let i = 0; i < parts.length - 1; i++) {
        dir = await fs.open(under(dir.fd, parts[i]), fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
        opened.push(dir);
      }
      const fh = await fs.open(under(dir.fd, parts[parts.length - 1]), fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY);
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
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOTDIR') throw new StrataError(Errno.ELOOP, `store file ${rel}: a symlink or non-directory on its path (not followed)`);
      throw StrataError.from(err, `store file ${rel}`);
    } finally {
      for (const d of opened) await d.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.root.close().catch(() => undefined);
  }
}
