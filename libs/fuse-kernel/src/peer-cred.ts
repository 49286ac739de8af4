import type { Socket } from 'node:net';
import { Errno, StrataError } from '@strata/errors';
import { addon } from './native';

/** Who connected to a unix socket, as the kernel recorded it at connect(2). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * SO_PEERCRED of a connected unix socket's descriptor. The answer is the
 * connecting process's at connect time: it cannot be changed by what the
 * peer sends, nor by the peer changing its ids later.
 */
export function peerCredentials(fd: number): PeerCredentials {
  if (!Number.isInteger(fd) || fd < 0) throw StrataError.invalid(`peerCredentials: ${fd} is not a descriptor`);
  try {
    return addon().peerCredentials(fd);
  } catch (err) {
    const errno = typeof (err as { errno?: unknown }).errno === 'number' ? (err as { errno: number }).errno : Errno.EIO;
    throw new StrataError(errno, (err as Error).message, { cause: err });
  }
}

/**
 * The descriptor under a net.Socket accepted by a unix-socket server. Node
 * does not expose it; its pipe handle carries it as `fd`. Absent (another
 * Node, a socket not backed by a descriptor) is an error, never a guess.
 */
export function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw StrataError.io('this socket exposes no file descriptor (net.Socket._handle.fd): its peer cannot be identified');
  return fd;
}

/** peerCredentials of an accepted unix-socket connection. */
export function socketPeer(socket: Socket): PeerCredentials {
  return peerCredentials(socketFd(socket));
}
