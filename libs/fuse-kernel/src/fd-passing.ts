/**
 * Unix sockets Node has no API for: SOCK_SEQPACKET connections that carry
 * file descriptors (SCM_RIGHTS), for the fd holder, and a bound datagram
 * socket (a stand-in for systemd's notification socket in tests). The
 * sockets are plain fd numbers owned by the caller; every wait is bounded.
 */
import { Errno, StrataError } from '@strata/errors';
import { addon } from './native';

/** What native/fd-passing.cc adds to the addon. */
interface FdPassingAddon {
  unixConnect(path: string, timeoutMs: number): number;
  unixBindDgram(path: string): number;
  unixSend(fd: number, bytes: Buffer, fds: readonly number[], timeoutMs: number): void;
  unixRecv(fd: number, maxBytes: number, maxFds: number, timeoutMs: number): Promise<ReceivedPacket | null>;
  closeFd(fd: number): void;
  setCloexec(fd: number): void;
  heartbeatStart(fd: number, bytes: Buffer, intervalMs: number): number;
  heartbeatStop(handle: number): boolean;
}

/** One packet and the fds that came with it (new descriptors of this process, close-on-exec: the receiver owns them). */
export interface ReceivedPacket {
  bytes: Buffer;
  fds: number[];
}

export const MAX_PACKET_BYTES = 1 << 20;
/** SCM_MAX_FD: the kernel's limit per message. */
export const MAX_PACKET_FDS = 253;

function native(): FdPassingAddon {
  return addon() as unknown as FdPassingAddon;
}

function errnoOf(err: unknown): number {
  const errno = (err as { errno?: unknown } | null)?.errno;
  return typeof errno === 'number' ? errno : Errno.EIO;
}

function wrap<T>(what: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    if (err instanceof StrataError) throw err;
    throw new StrataError(errnoOf(err), `${what}: ${(err as Error).message}`, { cause: err });
  }
}

function checkFd(fd: number, what: string): void {
  if (!Number.isInteger(fd) || fd < 0) throw StrataError.invalid(`${what}: ${fd} is not a descriptor`);
}

/** Connects a SOCK_SEQPACKET socket to path (or "@abstract"); ENOENT / ECONNREFUSED when nobody listens there. */
export function connectSeqpacket(path: string, timeoutMs = 5000): number {
  return wrap(`connect ${path}`, () => native().unixConnect(path, timeoutMs));
}

/** A unix datagram socket bound at path (or "@abstract"): receive on it with receivePacket. */
export function bindDatagram(path: string): number {
  return wrap(`bind ${path}`, () => native().unixBindDgram(path));
}

/** Sends one packet with fds (the receiver gets its own duplicates; the caller's stay open). */
export function sendPacket(fd: number, bytes: Buffer, fds: readonly number[] = [], timeoutMs = 5000): void {
  checkFd(fd, 'sendPacket');
  if (bytes.length > MAX_PACKET_BYTES) throw StrataError.invalid(`sendPacket: ${bytes.length} bytes is more than ${MAX_PACKET_BYTES}`);
  if (fds.length > MAX_PACKET_FDS) throw StrataError.invalid(`sendPacket: ${fds.length} fds is more than ${MAX_PACKET_FDS}`);
  for (const f of fds) checkFd(f, 'sendPacket');
  wrap('sendPacket', () => native().unixSend(fd, bytes, fds, timeoutMs));
}

/**
 * Receives one packet, waiting at most timeoutMs (ETIMEDOUT); null when the
 * peer closed. A packet larger than maxBytes or with more than maxFds fds is
 * EMSGSIZE, and whatever fds it carried are closed.
 */
export async function receivePacket(
  fd: number,
  options: { maxBytes?: number; maxFds?: number; timeoutMs?: number } = {},
): Promise<ReceivedPacket | null> {
  checkFd(fd, 'receivePacket');
  const maxBytes = options.maxBytes ?? 256 * 1024;
  const maxFds = options.maxFds ?? 64;
  if (!(maxBytes >= 0 && maxBytes <= MAX_PACKET_BYTES) || !(maxFds >= 0 && maxFds <= MAX_PACKET_FDS)) {
    throw StrataError.invalid(`receivePacket: maxBytes 0..${MAX_PACKET_BYTES}, maxFds 0..${MAX_PACKET_FDS}`);
  }
  try {
    return await wrap('receivePacket', () => native().unixRecv(fd, maxBytes, maxFds, options.timeoutMs ?? 5000));
  } catch (err) {
    if (err instanceof StrataError) throw err;
    throw new StrataError(errnoOf(err), `receivePacket: ${(err as Error).message}`, { cause: err });
  }
}

/** close(2) of a descriptor this process owns (a socket from here, an fd received). */
export function closeFd(fd: number): void {
  checkFd(fd, 'closeFd');
  wrap('close', () => native().closeFd(fd));
}

/** Marks fd close-on-exec (a descriptor inherited without it, as systemd passes LISTEN_FDS). */
export function setCloexec(fd: number): void {
  checkFd(fd, 'setCloexec');
  wrap('fcntl(FD_CLOEXEC)', () => native().setCloexec(fd));
}

/**
 * Sends bytes on fd every intervalMs from a native thread, so that a busy
 * JavaScript thread does not stop it (a stopped process does). The thread
 * uses its own duplicate of fd. Returns a handle for stopHeartbeat.
 */
export function startHeartbeat(fd: number, bytes: Buffer, intervalMs: number): number {
  checkFd(fd, 'startHeartbeat');
  if (!Number.isFinite(intervalMs) || intervalMs < 10) throw StrataError.invalid(`startHeartbeat: interval ${intervalMs} ms (≥ 10)`);
  return wrap('startHeartbeat', () => native().heartbeatStart(fd, bytes, intervalMs));
}

/** Stops (and joins) a heartbeat thread; false when the handle was not running. */
export function stopHeartbeat(handle: number): boolean {
  return wrap('stopHeartbeat', () => native().heartbeatStop(handle));
}
