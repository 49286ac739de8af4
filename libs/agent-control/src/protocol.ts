/**
 * The agent's control protocol: one JSON request per connection, one JSON
 * line back. Local only (a unix socket), so it carries no auth of its own:
 * the socket's mode decides who may connect, and the agent reads each
 * caller's uid from the kernel (SO_PEERCRED) to decide what they may mount.
 */

/** One live mount, as `strata mounts --json` prints it (a stable shape). */
export interface MountInfo {
  mountpoint: string;
  layerId: number;
  layerName: string;
  /** Layer ids from this layer down to its base image. */
  chain: number[];
  /** True when some layer of the chain is LIVE: short cache timeouts. */
  live: boolean;
  /** Mount flags applied: ro always, plus noexec/nosuid/nodev from the layer options. */
  flags: string[];
  /** ISO time the mount went live. */
  mountedAt: string;
  /** Made with `strata mount --hard`: readers wait for the resolvers and the next agent, never EIO after a deadline (absent: false). */
  hard?: boolean;
  /**
   * Who opens its files (agent --file-opens; agents before this field: absent): `kernel`, the kernel
   * itself (no round trip per open, the page cache kept, no passthrough), or `agent`, its session.
   */
  fileOpens?: 'kernel' | 'agent';
  /**
   * How it serves, from the answers its operations got (agents before this field: absent):
   * serving, degraded (its operations fail), revoked (EACCES: the agent lost its grant),
   * resolvers-away (no resolver answers this host).
   */
  state?: MountState;
  /** Why, when it is not serving. */
  health?: MountHealthInfo;
}

export type MountState = 'serving' | 'degraded' | 'revoked' | 'resolvers-away';

export interface MountHealthInfo {
  /** Failed operations in a row, with no success since. */
  consecutiveFailures: number;
  /** Operations answered and failed in the last minute. */
  recent: { answered: number; failed: number };
  lastError?: { errno: string; message: string; at: string };
  lastAnswerAt?: string;
}

/** One resolver as the agent's Session streams see it. */
export interface ResolverState {
  address: string;
  /** connected: a stream is open on it; reconnecting: its stream broke; unreachable: it refuses connections; idle: no stream yet. */
  state: 'connected' | 'reconnecting' | 'unreachable' | 'idle';
  /** ISO time of the last change. */
  since?: string;
  lastError?: string;
}

/** What `strata status` asks the agent (op "status"). */
export interface AgentStatus {
  pid: number;
  version?: string;
  commit?: string;
  node: string;
  startedAt: string;
  socket: string;
  /** How the agent speaks to its resolvers, and the identity it presents (its certificate's subject or first URI). */
  tls: { mode: 'off' | 'on' | 'mutual'; identity?: string };
  resolvers: ResolverState[];
  /** Set while no resolver answers: operations that need one fail with EIO. */
  outage?: { since: string; failedOps: number };
  dataCache: { dir: string; maxBytes: number; bytes: number; files: number };
  chunkCache: { maxBytes: number; bytes: number };
  mounts: MountInfo[];
}

export type ControlRequest =
  | { op: 'mount'; layer: string; mountpoint: string; hard?: boolean }
  | { op: 'umount'; mountpoint: string; lazy?: boolean }
  | { op: 'mounts' }
  | { op: 'status' };

export interface ControlError {
  message: string;
  /** Linux errno name, e.g. "EBUSY". */
  errno: string;
}

export type ControlResponse =
  | { ok: true; mount?: MountInfo; mounts?: MountInfo[]; status?: AgentStatus }
  | { ok: false; error: ControlError };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a decoded request; returns a message saying what is wrong, or the request. */
export function parseControlRequest(v: unknown): ControlRequest | string {
  if (!isObject(v)) return 'request must be a JSON object';
  switch (v.op) {
    case 'mount':
      if (typeof v.layer !== 'string' || v.layer === '') return 'mount needs "layer" (an id or a name)';
      if (typeof v.mountpoint !== 'string' || v.mountpoint === '') return 'mount needs "mountpoint"';
      if (v.hard !== undefined && typeof v.hard !== 'boolean') return 'mount\'s "hard" must be true or false';
      return { op: 'mount', layer: v.layer, mountpoint: v.mountpoint, ...(v.hard === true ? { hard: true } : {}) };
    case 'umount':
      if (typeof v.mountpoint !== 'string' || v.mountpoint === '') return 'umount needs "mountpoint"';
      return { op: 'umount', mountpoint: v.mountpoint, lazy: v.lazy === true };
    case 'mounts':
      return { op: 'mounts' };
    case 'status':
      return { op: 'status' };
    default:
      return `unknown op ${JSON.stringify(v.op)} (expected mount, umount, mounts or status)`;
  }
}
