/**
 * Descriptors the service manager passed at start (sd_listen_fds(3)):
 * sockets of socket units, and what this service put in its fd store
 * (sd-notify.ts sdStoreFds) before a restart or crash. They start at fd 3,
 * LISTEN_FDS of them, for the process LISTEN_PID names, named by
 * LISTEN_FDNAMES (colon-separated; systemd says "unknown" for an unnamed one,
 * "stored" for a stored one without FDNAME).
 */
import { StrataError } from '@strata/errors';
import { setCloexec } from './fd-passing';

export interface ListenFd {
  name: string;
  fd: number;
}

const SD_LISTEN_FDS_START = 3;
/** No service gets more: systemd's own FileDescriptorStoreMax ceiling is far below this. */
const MAX_LISTEN_FDS = 65536;

export interface ListenFdsOptions {
  /** Whose environment (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Which process the fds are for (default this one). */
  pid?: number;
  /**
   * Remove LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES from env and mark the fds
   * close-on-exec (default true), so that no child process takes them for its own.
   */
  unset?: boolean;
}

/**
 * The passed fds, or [] when there are none for this process. Malformed
 * variables (not a number, names not matching the count) are EINVAL: a
 * service manager does not write them, so something else did.
 */
export function listenFds(options: ListenFdsOptions = {}): ListenFd[] {
  const env = options.env ?? process.env;
  const pid = options.pid ?? process.pid;
  const listenPid = env.LISTEN_PID;
  const listenCount = env.LISTEN_FDS;
  const listenNames = env.LISTEN_FDNAMES;
  if (options.unset ?? true) {
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
  }
  if (listenPid === undefined || listenCount === undefined) return [];
  if (!/^[1-9][0-9]*$/.test(listenPid)) throw StrataError.invalid(`LISTEN_PID is not a process id: ${JSON.stringify(listenPid)}`);
  // Passed to another process (our parent, exec'd through us): not ours to take.
  if (Number(listenPid) !== pid) return [];
  if (!/^[0-9]+$/.test(listenCount) || Number(listenCount) > MAX_LISTEN_FDS) {
    throw StrataError.invalid(`LISTEN_FDS is not a count: ${JSON.stringify(listenCount)}`);
  }
  const count = Number(listenCount);
  const names = listenNames === undefined || listenNames === '' ? [] : listenNames.split(':');
  if (names.length > 0 && names.length !== count) {
    throw StrataError.invalid(`LISTEN_FDNAMES names ${names.length} fds, LISTEN_FDS says ${count}`);
  }
  const fds: ListenFd[] = [];
  for (let i = 0; i < count; i++) {
    const fd = SD_LISTEN_FDS_START + i;
    if (options.unset ?? true) setCloexec(fd);
    fds.push({ name: names[i] ?? 'unknown', fd });
  }
  return fds;
}
