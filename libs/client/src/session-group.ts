import type { EndpointPicker } from './retry';
import { SessionClient, type SessionAnswer, type SessionClientOptions, type SessionEndpoint, type SessionPayload } from './session-client';

/** Resolvers dealt in turn (an EndpointPool): stream i of a group opens on resolver i. */
export interface SessionEndpoints extends EndpointPicker<SessionEndpoint> {
  readonly endpoints: readonly SessionEndpoint[];
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
    // The pool deals endpoints in turn, so stream i opens on resolver i.
    this.sessions = pool.endpoints.map(() => new SessionClient({ ...options, pool }));
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
