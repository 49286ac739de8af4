import { Errno, StrataError } from '@strata/errors';
import { addon } from './native';

/** native/sd-notify.cc: the third argument (fds, SCM_RIGHTS) is what FDSTORE needs. */
type SdNotifyWithFds = (socketPath: string, text: string, fds?: readonly number[]) => void;

/** systemd takes at most this many fds in one message (SCM_MAX_FD). */
const MAX_FDS = 253;

/**
 * Tells the service manager about this process (sd_notify(3)): "READY=1"
 * when a Type=notify unit is up, "STOPPING=1", "STATUS=...". Does nothing
 * (false) when $NOTIFY_SOCKET is unset: not started by systemd, or not as
 * a notify service. A socket that refuses the datagram is a StrataError.
 * fds go with the datagram (SCM_RIGHTS; the manager gets its own dups).
 */
export function sdNotify(
  fields: Readonly<Record<string, string | number>>,
  socketPath: string | undefined = process.env.NOTIFY_SOCKET,
  fds: readonly number[] = [],
): boolean {
  if (socketPath === undefined || socketPath === '') return false;
  if (fds.length > MAX_FDS || fds.some((fd) => !Number.isInteger(fd) || fd < 0)) {
    throw StrataError.invalid(`sd_notify: up to ${MAX_FDS} descriptors (${fds.length})`);
  }
  const text = Object.entries(fields)
    // A value spans one line: a newline would start a field of its own.
    .map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`)
    .join('\n');
  try {
    (addon().sdNotify as SdNotifyWithFds)(socketPath, text, fds);
    return true;
  } catch (err) {
    const errno = typeof (err as { errno?: unknown }).errno === 'number' ? (err as { errno: number }).errno : Errno.EIO;
    throw new StrataError(errno, `${socketPath}: ${(err as Error).message}`, { cause: err });
  }
}

/** systemd's rule for an fd name (fdname_is_valid): 1..255 printable ASCII characters, no ':'. */
function checkFdName(name: string): void {
  if (name.length === 0 || name.length > 255 || !/^[\x20-\x7e]+$/.test(name) || name.includes(':')) {
    throw StrataError.invalid(`an fd store name is 1..255 printable ASCII characters without ':' (${JSON.stringify(name)})`);
  }
}

/**
 * Puts fds into systemd's fd store under name (`FDSTORE=1`, `FDNAME=`):
 * the manager keeps them across a restart (or crash) of this service and
 * passes them back at the next start (LISTEN_FDS, see listenFds). The unit
 * needs `FileDescriptorStoreMax=`. With `poll: false` (`FDPOLL=0`) systemd
 * keeps an fd even after it reports POLLERR/POLLHUP; by default it drops
 * it then, which for /dev/fuse means: the connection ended. False when not
 * under systemd.
 */
export function sdStoreFds(
  name: string,
  fds: readonly number[],
  options: { socketPath?: string | undefined; poll?: boolean } = {},
): boolean {
  checkFdName(name);
  if (fds.length === 0) throw StrataError.invalid('FDSTORE needs at least one descriptor');
  const fields: Record<string, string | number> = { FDSTORE: 1, FDNAME: name };
  if (options.poll === false) fields.FDPOLL = 0;
  return sdNotify(fields, 'socketPath' in options ? options.socketPath : process.env.NOTIFY_SOCKET, fds);
}

/** Removes every fd stored under name from systemd's fd store (`FDSTOREREMOVE=1`). False when not under systemd. */
export function sdRemoveFds(name: string, socketPath: string | undefined = process.env.NOTIFY_SOCKET): boolean {
  checkFdName(name);
  return sdNotify({ FDSTOREREMOVE: 1, FDNAME: name }, socketPath);
}
