import { FuseSession, type FuseHandlers, type MountOptions } from '@strata/fuse-kernel';
import { Errno, StrataError } from '@strata/errors';

/**
 * The one place the agent meets FuseSession's takeover API (issue 27:
 * handoverFds, handoverState, release, adopt, requestTimeoutMs). A build
 * of the session without it leaves mounts as they were before takeover:
 * served by this agent only, unmounted when it stops.
 */

interface HandoverSession {
  handoverFds(): number[];
  handoverState(): object;
  release(): Promise<void>;
}

interface AdoptingSession {
  adopt(fds: number[], state: object, handlers: FuseHandlers, options: MountOptions & { adoptedInos?: Iterable<bigint> }): FuseSession;
}

function handover(session: FuseSession): HandoverSession | undefined {
  const s = session as unknown as Partial<HandoverSession>;
  return typeof s.handoverFds === 'function' && typeof s.handoverState === 'function' && typeof s.release === 'function' ? (s as HandoverSession) : undefined;
}

/** Whether this build's sessions can be handed over and taken over. */
export function takeoverSupported(): boolean {
  return typeof (FuseSession as unknown as Partial<AdoptingSession>).adopt === 'function' && typeof (FuseSession.prototype as unknown as Partial<HandoverSession>).handoverFds === 'function';
}

/** The session's fds (its own: send, never close) and the state a successor needs; undefined without takeover support. */
export function handoverOf(session: FuseSession): { fds: number[]; state: Record<string, unknown> } | undefined {
  const s = handover(session);
  if (!s) return undefined;
  return { fds: s.handoverFds(), state: s.handoverState() as Record<string, unknown> };
}

/** Stops serving without unmounting: the holder's copies of the fds keep the connection and what is in flight. */
export async function releaseSession(session: FuseSession): Promise<void> {
  const s = handover(session);
  if (!s) throw new StrataError(Errno.EOPNOTSUPP, 'this build of the FUSE session cannot hand a mount over');
  await s.release();
}

/** Serves a connection another agent mounted (the fds are dup'd: the caller closes its own). */
export function adoptSession(
  fds: number[],
  state: Record<string, unknown>,
  handlers: FuseHandlers,
  options: MountOptions & { adoptedInos?: Iterable<bigint> },
): FuseSession {
  const adopt = (FuseSession as unknown as Partial<AdoptingSession>).adopt;
  if (typeof adopt !== 'function') throw new StrataError(Errno.EOPNOTSUPP, 'this build of the FUSE session cannot take a mount over');
  return adopt.call(FuseSession, fds, state, handlers, options);
}

/** MountOptions' native deadline (0: wait, a --hard mount). */
export function withRequestTimeout(options: MountOptions, ms: number): MountOptions {
  return { ...options, requestTimeoutMs: ms } as MountOptions;
}
