import { FuseSession, type AdoptOptions, type FuseHandlers, type SessionHandover } from '@strata/fuse-kernel';

/**
 * The one place the agent meets FuseSession's takeover API (issue 27):
 * the session's fds and state for a successor, release, adopt.
 */

/** The session's fds (its own: send, never close) and the state a successor needs. */
export function handoverOf(session: FuseSession): { fds: number[]; state: SessionHandover } | undefined {
  const fds = session.handoverFds();
  if (fds.length === 0) return undefined;
  return { fds, state: session.handoverState() };
}

/** Stops serving without unmounting: the holder's copies of the fds keep the connection and what is in flight. */
export async function releaseSession(session: FuseSession): Promise<void> {
  await session.release();
}

/** Serves a connection another agent mounted (the fds are dup'd: the caller closes its own). EINVAL for a state of another format or version. */
export function adoptSession(fds: number[], state: SessionHandover, handlers: FuseHandlers, options: AdoptOptions): FuseSession {
  return FuseSession.adopt(fds, state, handlers, options);
}
