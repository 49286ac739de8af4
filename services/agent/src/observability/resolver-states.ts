import type { ResolverState } from '@strata/agent-control';

/**
 * Each resolver address as the agent's Session streams last saw it, for
 * `strata status` and the per-resolver connection gauge. "unreachable" is
 * the outage monitor's word (a connection of our own refused), not a broken
 * stream alone: grpc-js breaks streams while a resolver is merely restarting.
 */
export class ResolverStates {
  private readonly states = new Map<string, { state: 'connected' | 'reconnecting' | 'idle'; since: number; lastError?: string }>();

  constructor(
    addresses: readonly string[],
    private readonly unreachable: () => readonly string[],
    private readonly now: () => number = Date.now,
  ) {
    for (const a of addresses) this.states.set(a, { state: 'idle', since: this.now() });
  }

  /**
   * The addresses now dealt over (a name given may stand for several, and
   * they change): new ones idle until a stream opens, gone ones forgotten.
   */
  follow(endpoints: ReadonlyArray<{ address: string; dial: string }>): void {
    const now = new Set(endpoints.map((e) => e.address));
    for (const a of [...this.states.keys()]) if (!now.has(a)) this.states.delete(a);
    this.labels = new Map(endpoints.map((e) => [e.dial, e.address]));
    for (const e of endpoints) if (!this.states.has(e.address)) this.states.set(e.address, { state: 'idle', since: this.now() });
  }

  /** Sessions name the address they dial; status lists a name's resolvers as "name (ip:port)". */
  private labels = new Map<string, string>();

  connected(dialled: string): void {
    const address = this.labels.get(dialled) ?? dialled;
    this.states.set(address, { state: 'connected', since: this.now() });
  }

  broken(dialled: string, err: string | undefined): void {
    const address = this.labels.get(dialled) ?? dialled;
    const was = this.states.get(address);
    this.states.set(address, { state: 'reconnecting', since: was?.state === 'reconnecting' ? was.since : this.now(), lastError: err ?? was?.lastError });
  }

  list(): ResolverState[] {
    const away = new Set(this.unreachable());
    return [...this.states].map(([address, s]) => ({
      address,
      state: away.has(address) ? 'unreachable' : s.state,
      since: new Date(s.since).toISOString(),
      ...(s.lastError !== undefined ? { lastError: s.lastError } : {}),
    }));
  }
}
