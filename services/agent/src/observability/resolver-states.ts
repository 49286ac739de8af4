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
  follow(addresses: readonly string[]): void {
    const now = new Set(addresses);
    for (const a of [...this.states.keys()]) if (!now.has(a)) this.states.delete(a);
    for (const a of addresses) if (!this.states.has(a)) this.states.set(a, { state: 'idle', since: this.now() });
  }

  connected(address: string): void {
    this.states.set(address, { state: 'connected', since: this.now() });
  }

  broken(address: string, err: string | undefined): void {
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
