import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import type { MountEntry } from '../host/mountinfo';

/** Trees a mount must never cover, whoever owns a directory in them (/proc/PID is its process's user's). */
const SYSTEM_TREES = ['/proc', '/sys', '/dev', '/boot', '/etc', '/usr', '/bin', '/sbin', '/lib', '/lib64'];

/** /proc/self/fd/N: the directory the descriptor holds, for mount(2), readdir and readlink. */
export function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

function refuse(errno: number, message: string): StrataError {
  return new StrataError(errno, message);
}

/** The mount the path lies in: the longest mountpoint that is the path or one of its parents. */
function containingMount(table: readonly MountEntry[], p: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const t of table) {
    const inside = t.mountpoint === '/' || p === t.mountpoint || p.startsWith(`${t.mountpoint}/`);
    if (inside && (!best || t.mountpoint.length >= best.mountpoint.length)) best = t;
  }
  return best;
}

/**
 * A mountpoint a host user other than root asked for, opened and checked on
 * the descriptor: a directory (O_DIRECTORY), not a symbolic link
 * (O_NOFOLLOW), no symbolic link on the way either (the descriptor's own
 * path is the path asked for), owned by the user, empty, not a mount
 * already, not inside another FUSE file system (whose server could stall
 * the agent's look-ups) nor a system tree. The caller mounts on
 * fdPath(handle.fd), so a path swapped after the checks changes nothing,
 * and closes the handle once mounted.
 */
export async function openUserMountpoint(mountpoint: string, uid: number, table: readonly MountEntry[]): Promise<fs.FileHandle> {
  if (mountpoint === '/' || SYSTEM_TREES.some((t) => mountpoint === t || mountpoint.startsWith(`${t}/`))) {
    throw refuse(Errno.EPERM, `${mountpoint} is a system directory: only root may mount there`);
  }
  if (table.some((t) => t.mountpoint === mountpoint)) throw StrataError.precondition(`${mountpoint} is already a mount point`);
  const around = containingMount(table, path.dirname(mountpoint));
  if (around?.fstype.startsWith('fuse')) throw refuse(Errno.EPERM, `${mountpoint} lies inside a FUSE file system (${around.mountpoint}): not a place to mount for another user`);

  let handle: fs.FileHandle;
  try {
    handle = await fs.open(mountpoint, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw refuse(Errno.ELOOP, `mountpoint ${mountpoint} is a symbolic link`);
    if (code === 'ENOTDIR') {
      // O_DIRECTORY is judged before O_NOFOLLOW: a link answers ENOTDIR, and deserves its own words.
      const link = await fs.lstat(mountpoint).then((st) => st.isSymbolicLink(), () => false);
      if (link) throw refuse(Errno.ELOOP, `mountpoint ${mountpoint} is a symbolic link`);
      throw StrataError.notDir(`mountpoint ${mountpoint} is not a directory`);
    }
    if (code === 'ENOENT') throw StrataError.notFound(`mountpoint ${mountpoint} does not exist`);
    throw StrataError.from(err, `mountpoint ${mountpoint}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isDirectory()) throw StrataError.notDir(`mountpoint ${mountpoint} is not a directory`);
    if (st.uid !== uid) throw refuse(Errno.EPERM, `mountpoint ${mountpoint} is not yours (owner uid ${st.uid})`);
    const real = await fs.readlink(fdPath(handle.fd));
    if (real !== mountpoint) throw refuse(Errno.ELOOP, `mountpoint ${mountpoint} is reached through a symbolic link (it is ${real})`);
    const entries = await fs.readdir(fdPath(handle.fd));
    if (entries.length > 0) throw refuse(Errno.ENOTEMPTY, `mountpoint ${mountpoint} is not empty: a mount would hide what is in it`);
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** After mounting on fdPath(fd): the directory is still where it was asked for (not renamed meanwhile). */
export async function stillAt(fd: number, mountpoint: string): Promise<boolean> {
  return (await fs.readlink(fdPath(fd)).catch(() => '')) === mountpoint;
}
