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
  type SessionRequest,
  type SessionResponse,
} from '@strata/protocol';
import { parseAddresses } from './addresses';

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

  /** Plaintext unless given TLS credentials (tls.ts channelCredentials). */
  constructor(
    readonly address: string,
    creds: ChannelCredentials = credentials.createInsecure(),
  ) {
    this.secure = creds._isSecure();
    this.channel = new Channel(address, creds, CHANNEL_OPTIONS);
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

  /** A new Session stream on this resolver's channel. */
  openSession(): ClientDuplexStream<SessionRequest, SessionResponse> {
    return this.session.session(new Metadata());
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

/**
 * Several resolvers, used in turn: calls spread over the healthy ones and
 * a retry goes to the next one, so a dead replica costs one failed attempt.
 */
export class EndpointPool {
  readonly endpoints: Endpoint[];
  private next = 0;

  constructor(addresses: string | readonly string[], creds?: ChannelCredentials) {
    this.endpoints = parseAddresses(addresses).map((a) => new Endpoint(a, creds));
  }

  /** The next endpoint in turn, skipping ones known to be failing unless all are. */
  pick(): Endpoint {
    const n = this.endpoints.length;
    for (let i = 0; i < n; i++) {
      const e = this.endpoints[(this.next + i) % n];
      if (!e.failing) {
        this.next = (this.next + i + 1) % n;
        return e;
      }
    }
    const e = this.endpoints[this.next % n];
    this.next = (this.next + 1) % n;
    return e;
  }

  close(): void {
    for (const e of this.endpoints) e.close();
  }
}
