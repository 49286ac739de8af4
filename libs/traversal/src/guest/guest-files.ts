import { Errno, StrataError } from '@strata/errors';
import type { Filesystem } from '@strata/filesystem';
import { S_IFDIR, S_IFLNK, S_IFMT } from '@strata/posix';

/** As the kernel's MAXSYMLINKS: more links than this on one path is a loop. */
const MAX_LINKS = 40;
const MAX_COMPONENTS = 4096;

/**
 * Resolves a path inside one filesystem the way the guest would, following
 * symlinks (an absolute target starts again at this filesystem's root: the
 * files read here — os-release, fstab, hostname — live on the root
 * filesystem). Undefined when a name is missing.
 */
export async function resolveGuestPath(fs: Filesystem, root: number, path: string): Promise<number | undefined> {
  let pending = path.split('/').filter((c) => c !== '' && c !== '.');
  const stack: number[] = [root];
  let links = 0;
  let steps = 0;
  while (pending.length > 0) {
    if (++steps > MAX_COMPONENTS) throw new StrataError(Errno.ELOOP, `path ${path} has too many components`);
    const name = pending.shift() as string;
    if (name === '..') {
      if (stack.length > 1) stack.pop();
      continue;
    }
    const dir = stack[stack.length - 1];
    const next = await fs.lookup(dir, Buffer.from(name));
    if (next === undefined) return undefined;
    const node = await fs.node(next);
    if ((node.mode & S_IFMT) === S_IFLNK) {
      if (++links > MAX_LINKS) throw new StrataError(Errno.ELOOP, `too many symlinks resolving ${path}`);
      const target = (await fs.readlink(next)).toString('utf8');
      const parts = target.split('/').filter((c) => c !== '' && c !== '.');
      if (target.startsWith('/')) stack.length = 1;
      pending = [...parts, ...pending];
      continue;
    }
    if (pending.length > 0 && (node.mode & S_IFMT) !== S_IFDIR) return undefined;
    stack.push(next);
  }
  return stack[stack.length - 1];
}

/** A small text file of the guest (os-release, fstab, hostname), at most `limit` bytes; undefined when absent. */
export async function readGuestText(fs: Filesystem, root: number, path: string, limit = 1 << 20): Promise<string | undefined> {
  const handle = await resolveGuestPath(fs, root, path);
  if (handle === undefined) return undefined;
  const node = await fs.node(handle);
  if ((node.mode & S_IFMT) === S_IFDIR) return undefined;
  const data = await fs.read(handle, 0, Math.min(node.size, limit));
  return data.toString('utf8');
}

/** Whether a directory path exists (symlinks followed). */
export async function guestDirExists(fs: Filesystem, root: number, path: string): Promise<boolean> {
  const handle = await resolveGuestPath(fs, root, path).catch(() => undefined);
  if (handle === undefined) return false;
  return ((await fs.node(handle)).mode & S_IFMT) === S_IFDIR;
}
