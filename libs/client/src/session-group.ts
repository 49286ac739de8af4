import type { EndpointPicker } from './retry';
import { SessionClient, type SessionAnswer, type SessionClientOptions, type SessionEndpoint, type SessionPayload } from './session-client';

/** The resolvers of a group (an EndpointPool). */
export interface SessionEndpoints extends EndpointPicker<SessionEndpoint> {
  readonly endpoints: readonly (SessionEndpoint & { readonly failing?: boolean })[];
}

/**
 * Stream i's own turn through the resolvers: first resolver i, then, each
 * time it has to open again, the next one not known to be failing. Its own
 * cursor, not the pool's: unary calls made meanwhile (the agent's GetLayer
 * and Walk at mount) move the pool's cursor and would otherwise put every
 * stream on the same resolver.
 */
function turnFrom(pool: SessionEndpoints, start: number): EndpointPicker<SessionEndpoint> {
  let next = start;
  return {
    pick(): SessionEndpoint {
      const all = pool.endpoints;
      const n = all.length;
      for (let k = 0; k < n; k++) {
        const e = all[(next + k) % n];
        if (!e.failing) {
          next = (next + k + 1) % n;
          return e;
        }
      }
      const e = all[next % n];
      next = (next + 1) % n;
      return e;
    },
  };
}

/**
 * One Session stream per resolver address, requests dealt round robin: an
 * agent spreads its load over every replica. Each stream fails over on its
 * own (to the next healthy resolver), so a dead replica costs only the
 * resends of what was in flight on its stream.
 */
export class SessionGroup {
  private readonly sessions: SessionClient[];
  private next = 0;

  constructor(pool: SessionEndpoints, options: Omit<SessionClientOptions, 'pool'> = {}) {
    this.sessions = pool.endpoints.map((_, i) => new SessionClient({ ...options, pool: turnFrom(pool, i) }));
  }

  request(payload: SessionPayload, traceContext: Record<string, string> = {}, deadlineMs?: number): Promise<SessionAnswer> {
    const s = this.sessions[this.next];
    this.next = (this.next + 1) % this.sessions.length;
    return s.request(payload, traceContext, deadlineMs);
  }

  get inflight(): number {
    return this.sessions.reduce((n, s) => n + s.inflight, 0);
  }

  close(): void {
    for (const s of this.sessions) s.close();
  }
}
