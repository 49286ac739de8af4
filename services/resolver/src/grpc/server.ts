import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { MetadataCacheState } from '@strata/protocol';
import {
  API_PROTO_FILES,
  DiffServiceService,
  LayerServiceService,
  PROTO_ROOT,
  PolicyServiceService,
  ImageServiceService,
  ProjectionServiceService,
  SessionServiceService,
  VersionServiceService,
  LayerCheckServiceService,
  ExtentServiceService,
} from '@strata/protocol';
import { Errno, StrataError } from '@strata/errors';
import type { PolicyStore } from '@strata/layers';
import type { Logger } from '@strata/telemetry';
import type { Authorizer } from '../access/authorizer';
import type { AuditLog } from '@strata/audit';
import type { LayerOps } from '../layer-ops';
import type { RequestTracker } from '../observability/request-tracker';
import type { ProjectionOps } from '../projection-ops';
import { AccessControl } from './access-control';
import { CallLimiter } from './call-limiter';
import { DEFAULT_LIMITS, type ServerLimits } from './limits';
import { layerService } from './layer-service';
import { imageService } from './image-service';
import type { ImageOps } from '../image-ops';
import { policyService } from './policy-service';
import { versionService } from './version-service';
import { layerCheckService } from './layer-check-service';
import { extentService } from './extent-service';
import { ExtentMaps } from '../extent/extent-maps';
import { StoreIdentityFile } from '../extent/store-identity';
import type { LayerChecker } from '../layer-check';
import { projectionHandlers } from './projection-handlers';
import { diffService, projectionService } from './services';
import { type SessionHandle, sessionHandler } from './session';
import { ReloadableServerCredentials, callerIdentity } from './tls';
import { withInvalidArgumentOnBadInput } from './undecodable';
import { sessionResponseBytes } from './session-wire';
import { DataStreamServer, type DataStreamOptions } from './data-stream';
import { type DataListen, dataAddressText, dataListenFromEnv } from './data-listen';

/** Responses carry up to 1 MiB of file data or a page of directory entries. */
export const MAX_RESPONSE_BYTES = 16 << 20;

const SERVICES = ['strata.v1.LayerService', 'strata.v1.ProjectionService', 'strata.v1.SessionService', 'strata.v1.DiffService', 'strata.v1.PolicyService', 'strata.v1.VersionService', 'strata.v1.LayerCheckService', 'strata.v1.ExtentService'];

/**
 * Each call's caller (its certificate's identity) on a log line before the
 * handler runs: at debug for unary and Walk/Diff calls, at info for a
 * Session stream, which is opened once per agent and lives for hours.
 */
function withCallerLog<T extends UntypedServiceImplementation>(service: string, impl: T, log: Logger): T {
  const out: UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(impl)) {
    const method = `${service}/${name}`;
    const level = service === 'SessionService' ? 'info' : 'debug';
    const wrapped = (call: { getAuthContext?(): unknown }, ...rest: unknown[]): unknown => {
      log[level]({ event: 'rpc.caller', method, caller: callerIdentity(call as Parameters<typeof callerIdentity>[0]) ?? 'anonymous' }, 'call');
      return (handler as (...args: unknown[]) => unknown)(call, ...rest);
    };
    out[name] = wrapped as UntypedServiceImplementation[string];
  }
  return out as T;
}

/** A data address that could not be bound, in one line as the gRPC port's (main.ts startFailure): `cannot listen on H:P (--data-listen): address already in use`. */
function dataBindFailure(host: string, port: number, err: unknown): StrataError {
  if (err instanceof StrataError) return err;
  const at = dataAddressText(host, port);
  const code = (err as NodeJS.ErrnoException).code;
  const errno = typeof code === 'string' ? (osConstants.errno as Record<string, number | undefined>)[code] : undefined;
  let text = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string') for (const [name, message] of getSystemErrorMap().values()) if (name === code) text = message;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') text = 'the host name does not resolve';
  return new StrataError(errno ?? Errno.EIO, `cannot listen on ${at} (--data-listen): ${text}`);
}

export interface ServerDeps {
  layers: LayerOps;
  images: ImageOps;
  /** The shared metadata cache as GetVersion reports it (Redis reachable or not). */
  cacheState?: () => MetadataCacheState;
  projection: ProjectionOps;
  policy: PolicyStore;
  authz: Authorizer;
  audit: AuditLog;
  log: Logger;
  tracker: RequestTracker;
  /** --max-message-bytes, --max-streams-per-identity, --session-inflight; DEFAULT_LIMITS when not given. */
  limits?: ServerLimits;
  /** `strata layer check`. */
  checker?: LayerChecker;
}

/** The resolver's gRPC server: the strata.v1 services, grpc.health.v1 and reflection. */
export class ResolverServer {
  readonly server: Server;
  readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  /** As grpc.health.v1 says it, for /healthz on the metrics listener too. */
  state: 'starting' | 'serving' | 'draining' = 'starting';
  readonly sessions = new Set<SessionHandle>();
  readonly limits: ServerLimits;
  readonly calls: CallLimiter;
  /** Session reads beside grpc-js (data-stream.ts), speaking what the gRPC port speaks; once listening. */
  dataStream: DataStreamServer | undefined;
  private dataPort: number | undefined;
  private dataHost: string | undefined;
  private readonly makeDataStream: (tls: DataStreamOptions['tls']) => DataStreamServer;
  private readonly log: Logger;

  constructor(deps: ServerDeps) {
    this.log = deps.log;
    const limits = (this.limits = deps.limits ?? DEFAULT_LIMITS);
    this.calls = new CallLimiter(limits.maxStreamsPerIdentity, deps.log);
    this.server = new Server({
      // A bigger request is refused with RESOURCE_EXHAUSTED before it is buffered whole or parsed.
      'grpc.max_receive_message_length': limits.maxMessageBytes,
      'grpc.max_send_message_length': MAX_RESPONSE_BYTES,
      // Per connection, enforced by HTTP/2 itself (a grpc-js client queues calls beyond it): the bound for callers without an identity.
      'grpc.max_concurrent_streams': limits.maxStreamsPerIdentity,
      // Agents hold one stream for hours: keepalive pings find dead peers behind NATs and crashed hosts.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    const safe = withInvalidArgumentOnBadInput;
    const rpc = { log: deps.log, tracker: deps.tracker };
    const log = deps.log;
    // Every service behind the per-identity call limit (cheapest refusal first), then access control (the one place it is decided), then the caller's log line.
    const access = new AccessControl(deps.authz, deps.audit, log);
    const add = <T extends UntypedServiceImplementation>(name: string, definition: ServiceDefinition, impl: T): void => {
      this.server.addService(safe(definition), this.calls.wrap(definition, withCallerLog(name, access.wrap(name, definition, impl), log)));
    };
    const handlers = projectionHandlers(deps.projection);
    this.makeDataStream = (tls) =>
      new DataStreamServer(handlers, rpc, { maxInflight: limits.sessionInflight, maxRequestBytes: limits.maxMessageBytes, tls, admission: access.sessionAdmission });
    add('LayerService', LayerServiceService, layerService(deps.layers, deps.authz, rpc, deps.images));
    add('ProjectionService', ProjectionServiceService, projectionService(deps.projection, handlers, rpc));
    add('DiffService', DiffServiceService, diffService(deps.projection, rpc));
    add('PolicyService', PolicyServiceService, policyService(deps.policy, deps.authz, rpc));
    add('VersionService', VersionServiceService, versionService(rpc, deps.cacheState));
    if (deps.checker) add('LayerCheckService', LayerCheckServiceService, layerCheckService(deps.checker, rpc));
    add('ImageService', ImageServiceService, imageService(deps.images, rpc));
    const storeRoot = deps.projection.storeRoot;
    add('ExtentService', ExtentServiceService, extentService(new ExtentMaps((ref) => deps.projection.view(ref), storeRoot), new StoreIdentityFile(storeRoot), rpc));
    // The generated service with a serializer that copies a read's data once (session-wire.ts).
    const sessionService = { session: { ...SessionServiceService.session, responseSerialize: sessionResponseBytes } };
    add('SessionService', sessionService, {
      session: sessionHandler(
        handlers,
        rpc,
        {
          opened: (s) => this.sessions.add(s),
          closed: (s) => this.sessions.delete(s),
        },
        limits.sessionInflight,
        access.sessionAdmission,
        () => (this.state === 'serving' ? this.dataPort : undefined),
      ),
    });
    this.health.addToServer(this.server);
    const definitions = protoLoader.loadSync(API_PROTO_FILES, { includeDirs: [PROTO_ROOT] });
    new ReflectionService(definitions).addToServer(this.server);
  }

  /**
   * Binds and starts serving (plaintext unless given TLS credentials);
   * resolves with the bound port (useful with port 0). `data` says where
   * the data stream listens (default: as the environment says,
   * data-listen.ts); an address of its own that cannot be bound fails the
   * start, and the gRPC port is closed again.
   */
  async listen(address: string, credentials: ServerCredentials = ServerCredentials.createInsecure(), data: DataListen = dataListenFromEnv()): Promise<number> {
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, p) => (err ? reject(err) : resolve(p)));
    });
    try {
      await this.listenData(address, credentials, data, process.env.STRATA_DATA_STREAM);
    } catch (err) {
      this.server.forceShutdown();
      throw err;
    }
    for (const s of ['', ...SERVICES]) this.health.setStatus(s, 'SERVING');
    this.state = 'serving';
    return port;
  }

  /** Where the data stream listens, once it does (its port is what Sessions announce). */
  get dataAddress(): { host: string; port: number } | undefined {
    return this.dataStream && this.dataHost !== undefined && this.dataPort !== undefined ? { host: this.dataHost, port: this.dataPort } : undefined;
  }

  /**
   * The data stream, where `data` says: beside the gRPC address (its host,
   * a port the system picks; a host it cannot bind leaves agents reading
   * over the Session), at an address of its own (--data-listen; not bound:
   * the start fails), or nowhere. It speaks what the gRPC port speaks.
   * Beside a TLS port it listens only when `mode` ($STRATA_DATA_STREAM) is
   * "tls": over TLS, decryption dominates both paths and the data stream
   * measured no better than the Session (issue 28: same client CPU, no
   * faster), so it is there to be measured, not used by default. An
   * address of its own is an explicit ask, served over TLS like the gRPC
   * port. Either way it takes the identity reloaded on SIGHUP.
   */
  private async listenData(address: string, credentials: ServerCredentials, data: DataListen, mode: string | undefined): Promise<void> {
    if (data.kind === 'off') return;
    const own = data.kind === 'at';
    const host = own ? data.host : address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
    const wanted = own ? data.port : 0;
    // TLS only with an identity this module can hand to a second listener (the resolver's own credentials).
    let tls: DataStreamOptions['tls'];
    if (credentials instanceof ReloadableServerCredentials && (own || mode === 'tls')) tls = { options: credentials.secureOptions, requestCert: credentials.mutual };
    else if (credentials._isSecure()) {
      if (own) throw StrataError.unsupported(`--data-listen ${dataAddressText(host, wanted)}: TLS credentials not given as files cannot serve the data stream`);
      return;
    }
    const stream = this.makeDataStream(tls);
    try {
      this.dataPort = await stream.listen(host, wanted);
    } catch (err) {
      if (own) throw dataBindFailure(host, wanted, err);
      this.log.warn({ event: 'resolver.data_stream.unavailable', host, err }, 'data stream not available; reads stay on the Session');
      return;
    }
    this.dataHost = host;
    this.dataStream = stream;
    if (credentials instanceof ReloadableServerCredentials) credentials.onReload((options) => stream.setSecureContext(options));
    this.log.info({ event: 'resolver.data_stream.listening', host, port: this.dataPort, tls: tls !== undefined, chosen: own }, 'data stream listening');
  }

  /**
   * Drains: health turns NOT_SERVING (balancers stop sending), new calls are
   * refused, calls in flight finish and Session streams end once their
   * requests in progress are answered; after graceMs whatever is left is
   * cancelled.
   */
  async drain(graceMs: number): Promise<void> {
    for (const s of ['', ...SERVICES]) this.health.setStatus(s, 'NOT_SERVING');
    this.state = 'draining';
    for (const s of this.sessions) s.drain();
    this.dataStream?.drain();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn({ event: 'shutdown.force', sessions: this.sessions.size }, 'grace period over; cancelling remaining calls');
        this.server.forceShutdown();
        this.dataStream?.close();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        this.dataStream?.close();
        resolve();
      });
    });
  }
}
