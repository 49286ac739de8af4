import { Channel, ChannelOptions, Metadata, connectivityState, credentials, type ChannelCredentials, type ClientDuplexStream } from '@grpc/grpc-js';
import {
  DiffServiceClient,
  LayerServiceClient,
  PolicyServiceClient,
  ImageServiceClient,
  VersionServiceClient,
  LayerCheckServiceClient,
  ProjectionServiceClient,
  SessionServiceClient,
  SessionServiceService,
  type SessionRequest,
  type SessionResponse,
} from '@strata/protocol';
import { parseAddresses } from './addresses';
import { sessionResponseFromBytes } from './session-wire';
import { DataLane, type DataLaneEvents } from './data-lane';
import { channelSecureContext } from './tls';
import { isIP } from 'node:net';
import { errorMessage } from '@strata/errors';
import { LOOKUP_TIMEOUT_MS, dialTarget, expandName, isHostName, mergeExpansions, systemLookup, type LookupAll } from './name-expansion';

/** Default resolver address (docs/design.md §5). */
export const DEFAULT_RESOLVER = '127.0.0.1:7400';

/** Responses carry up to 1 MiB of data or a page of entries; stay well above. */
const MAX_RECEIVE = 64 << 20;

const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': MAX_RECEIVE,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Reconnect quickly after a resolver restarts (grpc's default backoff grows to 120 s).
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
  // HTTP/2's default 64 KiB window makes a 1 MiB answer wait for window
  // updates 16 times; an agent keeps several chunks in flight.
  'grpc-node.flow_control_window': 8 << 20,
};

/** One resolver address with its channel and a client per service, all on that channel. */
export class Endpoint {
  readonly channel: Channel;
  readonly layers: LayerServiceClient;
  readonly projection: ProjectionServiceClient;
  readonly session: SessionServiceClient;
  readonly diff: DiffServiceClient;
  readonly policy: PolicyServiceClient;
  readonly images: ImageServiceClient;
  readonly version: VersionServiceClient;
  readonly check: LayerCheckServiceClient;
  /** The channel speaks TLS (errors word a closed connection as a refused handshake). */
  readonly secure: boolean;

  /** The host:port connected to: `address` itself, or a pinned address's IP:PORT. */
  readonly dial: string;

  /**
   * Plaintext unless given TLS credentials (tls.ts channelCredentials).
   * `address` as checked by parseAddresses; a pinned "name (ip:port)"
   * connects to the IP and verifies and addresses the server as the name.
   */
  /** The name TLS checks the resolver's certificate against, for a pinned address. */
  private readonly serverName: string | undefined;

  constructor(
    readonly address: string,
    private readonly creds: ChannelCredentials = credentials.createInsecure(),
  ) {
    this.secure = creds._isSecure();
    const target = dialTarget(address);
    this.dial = target.dial;
    this.serverName = target.serverName;
    const named: ChannelOptions = target.serverName
      ? { 'grpc.ssl_target_name_override': target.serverName, 'grpc.default_authority': target.authority }
      : {};
    this.channel = new Channel(target.dial, creds, { ...CHANNEL_OPTIONS, ...named });
    const opts = { channelOverride: this.channel };
    this.layers = new LayerServiceClient(address, creds, opts);
    this.projection = new ProjectionServiceClient(address, creds, opts);
    this.session = new SessionServiceClient(address, creds, opts);
    this.diff = new DiffServiceClient(address, creds, opts);
    this.policy = new PolicyServiceClient(address, creds, opts);
    this.images = new ImageServiceClient(address, creds, opts);
    this.version = new VersionServiceClient(address, creds, opts);
    this.check = new LayerCheckServiceClient(address, creds, opts);
  }

  /** A new Session stream on this resolver's channel; read answers keep their data where grpc-js received it (session-wire.ts). */
  openSession(): ClientDuplexStream<SessionRequest, SessionResponse> {
    const m = SessionServiceService.session;
    return this.session.makeBidiStreamRequest(m.path, m.requestSerialize, sessionResponseFromBytes, new Metadata());
  }

  /**
   * A data stream (data-lane.ts) to `port` on the host this endpoint
   * dials, speaking what the channel speaks: plaintext, or TLS with the
   * channel's context (its CA, its client certificate), checked against
   * the name the channel checks.
   */
  openData(port: number, events: DataLaneEvents): DataLane {
    const host = this.dial.slice(0, this.dial.lastIndexOf(':')).replace(/^\[|\]$/g, '');
    if (!this.secure) return new DataLane(host, port, events);
    const secureContext = channelSecureContext(this.creds);
    if (!secureContext) throw new Error('a data stream over TLS needs credentials made by channelCredentials()');
    const servername = this.serverName ?? (isIP(host) === 0 ? host : undefined);
    return new DataLane(host, port, events, { secureContext, servername });
  }

  /** Whether openData() can speak this channel's TLS (credentials from channelCredentials(), or plaintext). */
  get dataCapable(): boolean {
    return !this.secure || channelSecureContext(this.creds) !== undefined;
  }

  /** Known to be failing right now (grpc-js is backing off before it reconnects). */
  get failing(): boolean {
    return this.channel.getConnectivityState(false) === connectivityState.TRANSIENT_FAILURE;
  }

  close(): void {
    this.layers.close();
    this.projection.close();
    this.session.close();
    this.diff.close();
    this.policy.close();
    this.images.close();
    this.channel.close();
  }
}


/** A change of the addresses a pool spreads over (names looked up again): the one log line of it. */
export interface EndpointChange {
  /** The addresses as given (names among them). */
  given: readonly string[];
  /** Every address now, in the order calls are dealt. */
  addresses: readonly string[];
  added: readonly string[];
  removed: readonly string[];
  /** Names that could not be looked up this time (each keeps the addresses it had): why, one per name. */
  failed: readonly string[];
  /** The first expansion after start (the set given became the set used), not a change seen later. */
  initial: boolean;
}

export interface EndpointPoolOptions {
  /** How names are looked up (default: the system's resolver, as grpc-js would). */
  lookup?: LookupAll;
  /** Look names up again this often (default $STRATA_RESOLVER_REFRESH_MS, else 30 s; 0: only at start and when every endpoint fails). */
  refreshMs?: number;
  lookupTimeoutMs?: number;
  /** An endpoint whose address went is closed this long after (calls started on it finish; new ones go elsewhere). */
  retireGraceMs?: number;
  /** Told of every change (default: a JSON line on stderr for each change after the initial expansion). */
  onChange?: (change: EndpointChange) => void;
}

export const DEFAULT_REFRESH_MS = 30_000;
/** When every endpoint is failing, names are looked up again at most this often (pods replaced under a name). */
const FAILURE_REFRESH_GAP_MS = 1_000;
const DEFAULT_RETIRE_GRACE_MS = 30_000;

function refreshFromEnv(env: NodeJS.ProcessEnv): number {
  const v = env.STRATA_RESOLVER_REFRESH_MS;
  return v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : DEFAULT_REFRESH_MS;
}

/**
 * The default report of a change: one JSON line on stderr in the shape
 * of the services' logs (a client library has no logger of its own). The
 * initial expansion is not reported: a one-shot command prints nothing.
 */
function logChange(change: EndpointChange): void {
  if (change.initial) return;
  const { given, addresses, added, removed, failed } = change;
  const line = { level: 'info', time: new Date().toISOString(), pid: process.pid, event: 'client.resolvers.changed', given, addresses, added, removed, failed, msg: 'resolver addresses changed' };
  try {
    process.stderr.write(`${JSON.stringify(line)}\n`);
  } catch {
    // stderr gone: the change itself is what matters.
  }
}

/**
 * Several resolvers, used in turn: calls spread over the healthy ones and
 * a retry goes to the next one, so a dead replica costs one failed attempt.
 *
 * A host name given stands for every address it resolves to (a headless
 * Service: one per resolver pod): looked up at start, then every
 * `refreshMs` and whenever every endpoint is failing, each address an
 * endpoint of its own pinned to the name ("name (ip:port)"). Until the
 * first lookup answers, and for as long as a name cannot be looked up
 * before it ever was, the name itself is an endpoint (grpc-js resolves it).
 * Endpoints of addresses that went are closed after a grace period.
 */
export class EndpointPool {
  private current: Endpoint[];
  private readonly given: string[];
  private readonly hasNames: boolean;
  private readonly expansions = new Map<string, string[]>();
  private readonly listeners = new Set<() => void>();
  private readonly retiring = new Map<NodeJS.Timeout, Endpoint>();
  private readonly firstExpansion: Promise<void>;
  private readonly lookup: LookupAll;
  private readonly lookupTimeoutMs: number;
  private readonly retireGraceMs: number;
  private readonly onChange: (change: EndpointChange) => void;
  private refreshing: Promise<void> | undefined;
  private lastFailureRefresh = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private next = 0;

  constructor(
    addresses: string | readonly string[],
    private readonly creds?: ChannelCredentials,
    options: EndpointPoolOptions = {},
  ) {
    this.given = parseAddresses(addresses);
    this.lookup = options.lookup ?? systemLookup;
    this.lookupTimeoutMs = options.lookupTimeoutMs ?? LOOKUP_TIMEOUT_MS;
    this.retireGraceMs = options.retireGraceMs ?? DEFAULT_RETIRE_GRACE_MS;
    this.onChange = options.onChange ?? logChange;
    this.current = mergeExpansions(this.given.map((a) => [a])).map((a) => new Endpoint(a, creds));
    this.hasNames = this.given.some(isHostName);
    if (!this.hasNames) {
      this.firstExpansion = Promise.resolve();
      return;
    }
    this.firstExpansion = this.refresh(true);
    const every = options.refreshMs ?? refreshFromEnv(process.env);
    if (every > 0) {
      this.timer = setInterval(() => void this.refresh(false), every);
      this.timer.unref();
    }
  }

  /** The endpoints calls are dealt over now (a new array after each change). */
  get endpoints(): readonly Endpoint[] {
    return this.current;
  }

  /** Resolves once the names given were looked up the first time (at once without names); never rejects. */
  ready(): Promise<void> {
    return this.firstExpansion;
  }

  /** `listener` is called after each change of the endpoints; returns the way to stop that. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The next endpoint in turn, skipping ones known to be failing unless all are (then names are looked up again). */
  pick(): Endpoint {
    const all = this.current;
    const n = all.length;
    for (let i = 0; i < n; i++) {
      const e = all[(this.next + i) % n];
      if (!e.failing) {
        this.next = (this.next + i + 1) % n;
        return e;
      }
    }
    this.allFailing();
    const e = all[this.next % n];
    this.next = (this.next + 1) % n;
    return e;
  }

  /** Looks the names up again now (at most one lookup round at a time); resolves once the endpoints are updated. */
  refresh(initial = false): Promise<void> {
    if (this.closed || !this.hasNames) return Promise.resolve();
    this.refreshing ??= this.expand(initial).finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const [t, e] of this.retiring) {
      clearTimeout(t);
      e.close();
    }
    this.retiring.clear();
    this.listeners.clear();
    for (const e of this.current) e.close();
  }

  /** Every endpoint is failing (a caller that picks on its own, a Session stream, says so too): names are looked up again, at most once a second. */
  allFailing(): void {
    if (!this.hasNames || Date.now() - this.lastFailureRefresh < FAILURE_REFRESH_GAP_MS) return;
    this.lastFailureRefresh = Date.now();
    void this.refresh(false);
  }

  private async expand(initial: boolean): Promise<void> {
    const failed: string[] = [];
    const lists = await Promise.all(
      this.given.map(async (a): Promise<string[]> => {
        if (!isHostName(a)) return [a];
        try {
          const found = await expandName(a, this.lookup, this.lookupTimeoutMs);
          this.expansions.set(a, found);
          return found;
        } catch (err) {
          failed.push(errorMessage(err));
          // A name that answered before keeps its addresses through a failed lookup (a DNS hiccup is not every pod gone).
          return this.expansions.get(a) ?? [a];
        }
      }),
    );
    if (this.closed) return;
    this.apply(mergeExpansions(lists), failed, initial);
  }

  /** Makes `addresses` the pool's set: endpoints kept in their order, new ones after them, gone ones retired. */
  private apply(addresses: readonly string[], failed: readonly string[], initial: boolean): void {
    const wanted = new Set(addresses);
    const kept = this.current.filter((e) => wanted.has(e.address));
    const have = new Set(kept.map((e) => e.address));
    const added = addresses.filter((a) => !have.has(a));
    const gone = this.current.filter((e) => !wanted.has(e.address));
    if (added.length === 0 && gone.length === 0) {
      if (initial) this.report({ added, removed: [], failed, initial });
      return;
    }
    this.current = [...kept, ...added.map((a) => new Endpoint(a, this.creds))];
    this.next %= this.current.length;
    for (const e of gone) this.retire(e);
    for (const l of [...this.listeners]) l();
    this.report({ added, removed: gone.map((e) => e.address), failed, initial });
  }

  private report(c: Pick<EndpointChange, 'added' | 'removed' | 'failed' | 'initial'>): void {
    try {
      this.onChange({ given: this.given, addresses: this.current.map((e) => e.address), ...c });
    } catch {
      // A listener's failure is not the pool's.
    }
  }

  /** Closed after the grace period: a started call (a Read stream) goes on until then; grpc-js lets it finish past close() too. */
  private retire(e: Endpoint): void {
    const t = setTimeout(() => {
      this.retiring.delete(t);
      e.close();
    }, this.retireGraceMs);
    t.unref();
    this.retiring.set(t, e);
  }
}
