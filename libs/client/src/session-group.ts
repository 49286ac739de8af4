import { dialAddress } from './addresses';
import type { EndpointPicker } from './retry';
import { SessionClient, type SessionAnswer, type SessionClientOptions, type SessionEndpoint, type SessionPayload } from './session-client';

/** The resolvers of a group (an EndpointPool). */
export interface SessionEndpoints extends EndpointPicker<SessionEndpoint> {
  /** The endpoints now: read at every pick, so a pool whose names were looked up again is followed. */
  readonly endpoints: readonly (SessionEndpoint & { readonly failing?: boolean })[];
  /** Calls `listener` after each change of `endpoints`; returns the way to stop that. */
  subscribe?(listener: () => void): () => void;
  /** Told when a stream found every endpoint failing (the pool looks its names up again). */
  allFailing?(): void;
}

/** A session that leaves the group is closed once nothing is in flight on it, and at the latest after this. */
export const RETIRE_BOUND_MS = 60_000;
const RETIRE_SWEEP_MS = 200;

/**
 * A stream's own turn through the resolvers: first its home resolver, then,
 * each time it has to open again, the next one not known to be failing. Its
 * own cursor, not the pool's: unary calls made meanwhile (the agent's
 * GetLayer and Walk at mount) move the pool's cursor and would otherwise
 * put every stream on the same resolver. Positions are found by address in
 * the pool's current list, so endpoints that come and go are followed.
 */
function turnFrom(pool: SessionEndpoints, home: string): EndpointPicker<SessionEndpoint> {
  let last: string | undefined;
  return {
    pick(): SessionEndpoint {
      const all = pool.endpoints;
      const n = all.length;
      const at = (a: string): number => all.findIndex((e) => e.address === a);
      // A last one that went: -1 + 1, the start of the list.
      const start = last === undefined ? Math.max(0, at(home)) : at(last) + 1;
      for (let k = 0; k < n; k++) {
        const e = all[(start + k) % n];
        if (!e.failing) {
          last = e.address;
          return e;
        }
      }
      pool.allFailing?.();
      const e = all[start % n];
      last = e.address;
      return e;
    },
  };
}

interface Member {
  /** The endpoint this session was made for. */
  home: string;
  client: SessionClient;
  /** The address its stream is connected to now (it moves on when one fails). */
  on?: string;
  retiredAt?: number;
}

/**
 * One Session stream per resolver endpoint, requests dealt round robin: an
 * agent spreads its load over every replica. Each stream fails over on its
 * own (to the next healthy resolver), so a dead replica costs only the
 * resends of what was in flight on its stream.
 *
 * The pool's endpoints may change (a name looked up again: pods come and
 * go). A new endpoint gets a session of its own; a session whose endpoint
 * went, or whose stream is on an address that went, is dealt nothing more
 * and closed once what it has in flight is answered (a new one takes the
 * place of the latter).
 *
 * Events name the address connected to (a pinned "name (ip:port)" as its
 * IP:PORT): what a caller that probes the resolvers itself can connect to.
 */
export class SessionGroup {
  private active: Member[];
  private readonly retiring = new Set<Member>();
  private sweep: NodeJS.Timeout | undefined;
  private readonly unsubscribe: (() => void) | undefined;
  private next = 0;
  private closed = false;

  constructor(
    private readonly pool: SessionEndpoints,
    private readonly options: Omit<SessionClientOptions, 'pool'> = {},
  ) {
    this.active = pool.endpoints.map((e) => this.member(e.address));
    this.unsubscribe = pool.subscribe?.(() => this.follow());
  }

  request(payload: SessionPayload, traceContext: Record<string, string> = {}, deadlineMs?: number): Promise<SessionAnswer> {
    const m = this.active[this.next % this.active.length];
    this.next = (this.next + 1) % this.active.length;
    return m.client.request(payload, traceContext, deadlineMs);
  }

  get inflight(): number {
    let n = 0;
    for (const m of this.active) n += m.client.inflight;
    for (const m of this.retiring) n += m.client.inflight;
    return n;
  }

  /** How many sessions take new requests (one per endpoint of the pool). */
  get size(): number {
    return this.active.length;
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    clearInterval(this.sweep);
    for (const m of [...this.active, ...this.retiring]) m.client.close();
    this.retiring.clear();
  }

  private member(home: string): Member {
    const onEvent = this.options.onEvent;
    const m: Member = {
      home,
      client: new SessionClient({
        ...this.options,
        pool: turnFrom(this.pool, home),
        onEvent: (e) => {
          if (e.type === 'connected') m.on = e.address;
          else if (m.on === e.address) m.on = undefined;
          onEvent?.({ ...e, address: dialAddress(e.address) });
        },
      }),
    };
    return m;
  }

  /** The pool changed: one session per endpoint again. */
  private follow(): void {
    if (this.closed) return;
    const live = new Set(this.pool.endpoints.map((e) => e.address));
    const keep: Member[] = [];
    for (const m of this.active) {
      if (live.has(m.home) && (m.on === undefined || live.has(m.on))) keep.push(m);
      else this.retire(m);
    }
    const homes = new Set(keep.map((m) => m.home));
    for (const e of this.pool.endpoints) if (!homes.has(e.address)) keep.push(this.member(e.address));
    this.active = keep;
    this.next %= Math.max(1, keep.length);
  }

  private retire(m: Member): void {
    m.retiredAt = Date.now();
    this.retiring.add(m);
    if (this.sweep) return;
    this.sweep = setInterval(() => {
      for (const r of this.retiring) {
        if (r.client.inflight > 0 && Date.now() - (r.retiredAt ?? 0) < RETIRE_BOUND_MS) continue;
        r.client.close();
        this.retiring.delete(r);
      }
      if (this.retiring.size === 0) {
        clearInterval(this.sweep);
        this.sweep = undefined;
      }
    }, RETIRE_SWEEP_MS);
    this.sweep.unref();
  }
}
