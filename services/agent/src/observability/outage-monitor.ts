import * as net from 'node:net';
import { dialAddress } from '@strata/client';

/** While a resolver is unreachable, it is tried this often, so its return is reported even when no request is waiting for it. */
const PROBE_INTERVAL_MS = 1000;
const PROBE_TIMEOUT_MS = 800;

/** The two levels the monitor logs at (a pino Logger is one). */
export interface EventLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

interface Down {
  since: number;
  /** Streams to it that broke or failed to open since it went away. */
  attempts: number;
  probe: NodeJS.Timeout;
}

/** Whether something accepts TCP connections at host:port (the resolver listens only once it serves). */
function accepts(given: string): Promise<boolean> {
  // "name (ip:port)" (one of a name's resolvers) is dialled at its address.
  const address = dialAddress(given);
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(at + 1));
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: PROBE_TIMEOUT_MS });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}

/**
 * Turns what the agent sees of its resolvers into one event per change of
 * state, with counts of what happened in between, never one per failed
 * request or reconnect attempt:
 *
 * - `agent.resolver.unreachable` / `agent.resolver.reachable`, per resolver
 *   address, from its Session stream (and a probe while it is away);
 * - `agent.resolver.down` / `agent.resolver.up`, for the host as a whole:
 *   operations fail with EIO because no resolver answers, until an answer
 *   from a resolver (not from a cache) comes back.
 */
export class OutageMonitor {
  private readonly away = new Map<string, Down>();
  /** Addresses whose broken stream is being checked with a connection of our own. */
  private readonly checking = new Set<string>();
  private outage: { since: number; failedOps: number } | undefined;
  private closed = false;

  constructor(
    private readonly log: EventLog,
    private readonly now: () => number = Date.now,
    private readonly probe: (address: string) => Promise<boolean> = accepts,
  ) {}

  /**
   * A Session stream to `address` broke or could not be opened. That alone
   * does not make an outage: grpc-js fails new streams while its channel
   * backs off even when the resolver is back, so an outage starts only when
   * the resolver also refuses a connection of our own.
   */
  async streamBroken(address: string, err: string | undefined): Promise<void> {
    if (this.closed || address === '') return;
    const known = this.away.get(address);
    if (known) {
      known.attempts++;
      return;
    }
    // A stream that ended cleanly was handed over (a draining resolver): not an outage unless reconnecting fails too.
    if (err === undefined || this.checking.has(address)) return;
    this.checking.add(address);
    let listening: boolean;
    try {
      listening = await this.probe(address);
    } finally {
      this.checking.delete(address);
    }
    if (listening || this.closed || this.away.has(address)) return;
    const down: Down = { since: this.now(), attempts: 1, probe: setInterval(() => void this.probeBack(address), PROBE_INTERVAL_MS) };
    down.probe.unref();
    this.away.set(address, down);
    this.log.warn({ event: 'agent.resolver.unreachable', resolver: address, err }, 'resolver unreachable; its streams move to the others');
  }

  /** A resolver answered on a Session stream. */
  streamConnected(address: string): void {
    this.back(address, 'stream');
  }

  private async probeBack(address: string): Promise<void> {
    if (!this.away.has(address)) return;
    if (await this.probe(address)) this.back(address, 'probe');
    else {
      const d = this.away.get(address);
      if (d) d.attempts++;
    }
  }

  private back(address: string, seenBy: 'stream' | 'probe'): void {
    const d = this.away.get(address);
    if (!d) return;
    clearInterval(d.probe);
    this.away.delete(address);
    this.log.info(
      { event: 'agent.resolver.reachable', resolver: address, downMs: this.now() - d.since, attempts: d.attempts, seenBy },
      'resolver reachable again',
    );
  }

  /** An operation failed because no resolver answered (EIO, deadline). */
  operationFailed(op: string, err: string): void {
    if (this.closed) return;
    if (this.outage) {
      this.outage.failedOps++;
      return;
    }
    this.outage = { since: this.now(), failedOps: 1 };
    this.log.warn({ event: 'agent.resolver.down', op, err }, 'no resolver answers: operations that need one fail with EIO');
  }

  /** A resolver answered a request (a cached answer does not count: it proves nothing about the resolvers). */
  resolverAnswered(): void {
    if (!this.outage) return;
    const { since, failedOps } = this.outage;
    this.outage = undefined;
    this.log.info({ event: 'agent.resolver.up', downMs: this.now() - since, failedOps }, 'resolvers answering again');
  }

  /** The host-wide outage under way (no resolver answers), if any. */
  get current(): { since: number; failedOps: number } | undefined {
    return this.outage ? { ...this.outage } : undefined;
  }

  /** Addresses currently unreachable. */
  get unreachable(): string[] {
    return [...this.away.keys()];
  }

  close(): void {
    this.closed = true;
    for (const d of this.away.values()) clearInterval(d.probe);
    this.away.clear();
  }
}
