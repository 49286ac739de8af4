import { connectivityState, credentials, type ClientReadableStream, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import type { Access, Grant, Layer, LayerRef, LayerSelector, LayerType, MountOption, Permission, UpdateLayerInput } from '@strata/layers';
import {
  Attr,
  DirEntry,
  ReadDirResponse,
  StatFsResponse,
  WalkEntry,
  changeKindFromProto,
  type ChangeKindName,
  grantFromProto,
  layerSelectorToProto,
  permissionToProto,
  layerFromProto,
  layerRefToProto,
  layerTypeToProto,
  mountOptionsToProto,
  OPERATIONS,
  type AnswerOf,
  type RequestOf,
  type UnaryOperation,
  unaryMethod,
  type ErrorInfo,
  type ImageLayerInfo,
  type InspectImageRequest,
  type InspectImageResponse,
  FileState,
  ExtentServiceClient,
} from '@strata/protocol';
import { type ExtentMap, type StoreIdentity, extentMapFromProto, storeIdentityFromProto } from './extent-map';
import { DEFAULT_RESOLVER, Endpoint, EndpointPool, type EndpointChange } from './endpoints';
import { sleep, systemClock } from './clock';
import { DEFAULT_RETRY, type RetryPolicy, isRetryable, withRetry } from './retry';
import { SessionClient, type SessionClientOptions } from './session-client';
import { SessionGroup } from './session-group';
import { type ClientTlsFiles, channelCredentials, tlsFromEnv } from './tls';
import { tracedMetadata } from './trace-metadata';
import { TransportError, combineTransportErrors, isTransportError, noAnswer, transportError } from './transport-error';

export interface ClientOptions {
  /** One or more resolver addresses ("h:p", "h:p,h:p" or a list); default $STRATA_RESOLVER, else 127.0.0.1:7400. */
  resolver?: string | readonly string[];
  /** Deadline of one unary call, retries included (default 10 s). */
  deadlineMs?: number;
  /** Deadline of a whole stream (Read, Walk, Diff); default none. */
  streamDeadlineMs?: number;
  retry?: RetryPolicy;
  /** TLS files (CA to verify the resolvers, certificate and key to present); default $STRATA_TLS_CA, $STRATA_TLS_CERT, $STRATA_TLS_KEY, else plaintext. */
  tls?: ClientTlsFiles;
  /** Told when a resolver host name's addresses change (default: a JSON line on stderr; see EndpointPool). */
  onResolverChange?: (change: EndpointChange) => void;
}

export interface CreateLayerOptions {
  source: string;
  filesystemPath?: string;
  base?: LayerRef;
  layerType?: LayerType;
  name?: string;
  mountOptions?: MountOption[];
}

/** The catalog's own update input: the same fields travel over the wire. */
export type UpdateLayerOptions = UpdateLayerInput & {
  /** Change it even though mounts use it (they are withdrawn). */
  force?: boolean;
};

/** One mount of an agent, as it tells the resolvers. */
export interface MountReportEntry {
  layerId: number;
  mountpoint: string;
}

/** The grants a caller may see, with the policy's generation. */
export interface GrantListing {
  grants: Grant[];
  generation: number;
  /** Whether the resolver enforces the policy (it serves mutual TLS). */
  enforced: boolean;
  /** The resolver's --admin identities (only an administrator is told them). */
  admins: string[];
}

export interface PolicyChange {
  /** The policy's generation after the call. */
  generation: number;
  /** False when there was nothing to do (the grant existed, or there was none to revoke). */
  changed: boolean;
}

export interface Change {
  path: Buffer;
  kind: ChangeKindName;
  before?: Attr;
  after?: Attr;
  /** The path could not be compared: what reading it failed with (a damaged object). */
  error?: ErrorInfo;
}

type Path = string | Buffer;

function toPath(p: Path): Buffer {
  return typeof p === 'string' ? Buffer.from(p) : p;
}

/** `checkLayer()`: each file of the layer and its state, and problems beyond one file. */
export interface LayerCheckResult {
  layerId: number;
  name: string;
  source: string;
  ok: boolean;
  files: { file: string; role: string; state: 'ok' | 'missing' | 'unreadable' | 'changed' | 'unknown'; detail: string }[];
  problems: string[];
  /** With `deep`: each damaged object (at most 10 000 listed), how many in all, and how many objects were read. */
  deep?: { damaged: { path: Buffer; ino: number; what: string; error?: ErrorInfo }[]; damagedCount: number; objectsChecked: number };
}

const FILE_STATES: Partial<Record<FileState, LayerCheckResult['files'][number]['state']>> = {
  [FileState.FILE_STATE_OK]: 'ok',
  [FileState.FILE_STATE_MISSING]: 'missing',
  [FileState.FILE_STATE_UNREADABLE]: 'unreadable',
  [FileState.FILE_STATE_CHANGED]: 'changed',
};

/** One resolver's answer to `versions()`. */
export interface ResolverVersion {
  address: string;
  version?: string;
  commit?: string;
  node?: string;
  /** Round trip of the call, in milliseconds. */
  latencyMs?: number;
  /** Its shared metadata cache: in-process only, or Redis and whether it answers. */
  metadataCache?: { kind: string; reachable: boolean; detail: string };
  /** Why it did not answer. */
  error?: string;
}

/** Adapts a grpc-js unary method (request, metadata, options, callback) to a promise. */
function call<Req, Res>(
  fn: (req: Req, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null, res: Res) => void) => unknown,
  req: Req,
  deadline: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, tracedMetadata(), { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/**
 * The strata.v1 API for programs: the CLI, the agent and other teams'
 * services. Read-only calls are retried on another resolver when one is
 * unavailable; streams resume where they broke off.
 */
export class StrataClient {
  readonly pool: EndpointPool;
  private readonly deadlineMs: number;
  private readonly streamDeadlineMs: number | undefined;
  private readonly retry: RetryPolicy;
  private readonly extentClients = new WeakMap<Endpoint, ExtentServiceClient>();

  constructor(options: ClientOptions = {}) {
    // An empty variable counts as unset (`STRATA_RESOLVER= cmd`).
    const creds = channelCredentials(options.tls ?? tlsFromEnv(process.env));
    this.pool = new EndpointPool(options.resolver ?? (process.env.STRATA_RESOLVER || DEFAULT_RESOLVER), creds, { onChange: options.onResolverChange });
    this.deadlineMs = options.deadlineMs ?? 10_000;
    this.streamDeadlineMs = options.streamDeadlineMs;
    this.retry = options.retry ?? DEFAULT_RETRY;
  }

  close(): void {
    this.pool.close();
  }

  /** One Session stream per resolver address, requests dealt round robin (the agent's channel). */
  sessionGroup(options: Omit<SessionClientOptions, 'pool'> = {}): SessionGroup {
    return new SessionGroup(this.pool, options);
  }

  /** A Session stream (the agent's channel) over the same resolvers. */
  session(options: Omit<SessionClientOptions, 'pool'> = {}): SessionClient {
    return new SessionClient({ ...options, pool: this.pool });
  }

  // ---- LayerService ----

  async createLayer(o: CreateLayerOptions): Promise<Layer> {
    // Not retried: a create that reached a resolver before the connection broke would be done twice.
    const res = await this.once((e, d) =>
      call(e.layers.createLayer.bind(e.layers), {
        source: o.source,
        filesystemPath: o.filesystemPath ?? '',
        base: o.base ? layerRefToProto(o.base) : undefined,
        layerType: o.layerType ? layerTypeToProto(o.layerType) : 0,
        name: o.name ?? '',
        mountOptions: mountOptionsToProto(o.mountOptions ?? []),
      }, d),
    );
    return layerFromProto(must(res.layer));
  }

  /** The layer and its whole chain, this layer first and the base image last; for a disk image layer, what its image holds. */
  async getLayer(ref: LayerRef): Promise<{ layer: Layer; chain: Layer[]; image?: ImageLayerInfo }> {
    const res = await this.idempotent((e, d) => call(e.layers.getLayer.bind(e.layers), { layer: layerRefToProto(ref) }, d));
    return { layer: layerFromProto(must(res.layer)), chain: res.chain.map(layerFromProto), ...(res.image ? { image: res.image } : {}) };
  }

  /** Looks inside a disk image without mounting it: a layer's, or a source's not in the catalog. */
  async inspectImage(target: { layer: LayerRef } | { source: string }): Promise<InspectImageResponse> {
    const req: InspectImageRequest = { target: 'layer' in target ? { $case: 'layer', layer: layerRefToProto(target.layer) } : { $case: 'source', source: target.source } };
    return this.idempotent((e, d) => call(e.images.inspectImage.bind(e.images), req, d));
  }

  async listLayers(): Promise<Layer[]> {
    const out: Layer[] = [];
    let pageToken = '';
    do {
      const token = pageToken;
      const res = await this.idempotent((e, d) => call(e.layers.listLayers.bind(e.layers), { pageSize: 1000, pageToken: token }, d));
      out.push(...res.layers.map(layerFromProto));
      pageToken = res.nextPageToken;
    } while (pageToken !== '');
    return out;
  }

  async updateLayer(ref: LayerRef, o: UpdateLayerOptions): Promise<Layer> {
    const res = await this.once((e, d) =>
      call(e.layers.updateLayer.bind(e.layers), {
        layer: layerRefToProto(ref),
        expectedGeneration: o.expectedGeneration ?? 0,
        name: o.name,
        source: o.source,
        filesystemPath: o.filesystemPath,
        mountOptions: o.mountOptions ? { options: mountOptionsToProto(o.mountOptions) } : undefined,
        base: o.base ? layerRefToProto(o.base) : undefined,
        layerType: o.layerType ? layerTypeToProto(o.layerType) : 0,
        force: o.force ?? false,
      }, d),
    );
    return layerFromProto(must(res.layer));
  }

  /** `force`: delete it even though mounts use it (they are withdrawn). */
  async deleteLayer(ref: LayerRef, expectedGeneration?: number, force = false): Promise<void> {
    await this.once((e, d) =>
      call(e.layers.deleteLayer.bind(e.layers), { layer: layerRefToProto(ref), expectedGeneration: expectedGeneration ?? 0, force }, d),
    );
  }

  /** Tells the resolvers which layers this agent's mounts use; a report replaces the agent's last one. */
  async reportMounts(r: { agentId: string; host: string; mounts: readonly MountReportEntry[]; ttlSeconds: number }): Promise<void> {
    await this.idempotent((e, d) =>
      call(e.layers.reportMounts.bind(e.layers), { agentId: r.agentId, host: r.host, mounts: r.mounts.map((m) => ({ layerId: m.layerId, mountpoint: m.mountpoint })), ttlSeconds: r.ttlSeconds }, d),
    );
  }

  // ---- LayerCheckService ----

  /** Whether a layer's files are still what it was made from, as the resolver sees them (read-only, so retried elsewhere). */
  /** `deep` reads the whole tree: the call gets `deepDeadlineMs` (default 30 minutes) instead of the client's deadline. */
  async checkLayer(ref: LayerRef, options: { deep?: boolean; deepDeadlineMs?: number } = {}): Promise<LayerCheckResult> {
    const deep = options.deep === true;
    const res = await this.idempotent((e, d) =>
      call(e.check.checkLayer.bind(e.check), { layer: layerRefToProto(ref), ...(deep ? { deep: true } : {}) }, deep ? Date.now() + (options.deepDeadlineMs ?? 30 * 60_000) : d),
    );
    return {
      ...(deep
        ? {
            deep: {
              damaged: res.damaged.map((x) => ({ path: x.path, ino: x.ino, what: x.what, ...(x.error ? { error: x.error } : {}) })),
              damagedCount: res.damagedCount,
              objectsChecked: res.objectsChecked,
            },
          }
        : {}),
      layerId: res.layerId,
      name: res.name,
      source: res.source,
      ok: res.ok,
      files: res.files.map((f) => ({ file: f.file, role: f.role, state: FILE_STATES[f.state] ?? 'unknown', detail: f.detail })),
      problems: res.problems,
    };
  }

  // ---- ExtentService ----

  /** Which image store the resolver serves (any resolver: replicas on one store answer the same). */
  async storeIdentity(): Promise<StoreIdentity> {
    const res = await this.idempotent((e, d) => {
      const c = this.extentClient(e);
      return call(c.getStoreIdentity.bind(c), {}, d);
    });
    return storeIdentityFromProto(res);
  }

  /**
   * Where [offset, offset+length) of a sealed layer's file lies in the store
   * (length 0: to the end of the file). The answer may cover less than
   * asked (see ExtentMap.length): ask again from where it stopped.
   * `siblings`: also the maps of up to that many other small files of the
   * file's directory, in the answer's `siblings` (one call for a directory
   * read file by file). `beyondDirectory`: they may also be files of the
   * directories after it (a walk of the tree); without it a sibling outside
   * the file's directory fails the answer.
   */
  async extentMap(ref: LayerRef, path: Path, offset = 0, length = 0, siblings = 0, beyondDirectory = false): Promise<ExtentMap> {
    const p = toPath(path);
    const res = await this.idempotent((e, d) => {
      const c = this.extentClient(e);
      return call(c.extentMap.bind(c), { layer: layerRefToProto(ref), path: p, offset, length, ...(siblings > 0 ? { siblings } : {}), ...(siblings > 0 && beyondDirectory ? { beyondDirectory } : {}) }, d);
    });
    return extentMapFromProto(res, { path: p, beyondDirectory: siblings > 0 && beyondDirectory });
  }

  /** The ExtentService client of an endpoint, on its channel (made here, once per endpoint). */
  private extentClient(e: Endpoint): ExtentServiceClient {
    let c = this.extentClients.get(e);
    if (!c) {
      // The channel carries the endpoint's credentials; these are not used.
      c = new ExtentServiceClient(e.address, credentials.createInsecure(), { channelOverride: e.channel });
      this.extentClients.set(e, c);
    }
    return c;
  }

  // ---- VersionService ----

  /**
   * The build of every resolver this client was given, each asked on its
   * own address (not retried elsewhere: the answer is about that one), with
   * the round trip; a resolver that does not answer has `error` instead.
   */
  async versions(): Promise<ResolverVersion[]> {
    await this.pool.ready();
    return Promise.all(
      this.pool.endpoints.map(async (e): Promise<ResolverVersion> => {
        const started = performance.now();
        try {
          const res = await call(e.version.getVersion.bind(e.version), {}, Date.now() + this.deadlineMs);
          return {
            address: e.address,
            version: res.version,
            ...(res.commit ? { commit: res.commit } : {}),
            node: res.node,
            latencyMs: performance.now() - started,
            ...(res.metadataCache ? { metadataCache: res.metadataCache } : {}),
          };
        } catch (err) {
          return { address: e.address, error: transportError(err, e.address, this.deadlineMs, e.secure).message };
        }
      }),
    );
  }

  // ---- PolicyService ----

  /** Grants `permission` on the selected layers; a grant that exists already is left as it is. Repeating it is harmless, so it is retried. */
  async grant(identity: string, permission: Permission, layer: LayerSelector, expectedGeneration = 0): Promise<PolicyChange & { grant: Grant }> {
    const res = await this.idempotent((e, d) =>
      call(e.policy.grant.bind(e.policy), { identity, permission: permissionToProto(permission), layer: layerSelectorToProto(layer), expectedGeneration }, d),
    );
    return { grant: grantFromProto(must(res.grant)), generation: res.generation, changed: res.changed };
  }

  async revoke(identity: string, permission: Permission, layer: LayerSelector, expectedGeneration = 0): Promise<PolicyChange> {
    const res = await this.idempotent((e, d) =>
      call(e.policy.revoke.bind(e.policy), { identity, permission: permissionToProto(permission), layer: layerSelectorToProto(layer), expectedGeneration }, d),
    );
    return { generation: res.generation, changed: res.changed };
  }

  async listGrants(): Promise<GrantListing> {
    const res = await this.idempotent((e, d) => call(e.policy.listGrants.bind(e.policy), {}, d));
    return { grants: res.grants.map(grantFromProto), generation: res.generation, enforced: res.enforced, admins: res.admins };
  }

  /** What an identity may do on a layer (for agents: a host user, `unix-user:NAME`); `enforced` false means everyone may do everything. */
  async checkAccess(identity: string, layer: LayerRef): Promise<Access & { enforced: boolean }> {
    const res = await this.idempotent((e, d) => call(e.policy.checkAccess.bind(e.policy), { identity, layer: layerRefToProto(layer) }, d));
    return { read: res.read, admin: res.admin, enforced: res.enforced };
  }

  // ---- ProjectionService ----

  /**
   * One projection operation as a unary call, from the operation table:
   * retried on another resolver when the table says it is idempotent.
   */
  call<K extends UnaryOperation>(op: K, req: RequestOf<K>): Promise<AnswerOf<K>> {
    const m = unaryMethod(op);
    const attempt = (e: Endpoint, deadline: number): Promise<AnswerOf<K>> =>
      new Promise((resolve, reject) => {
        e.projection.makeUnaryRequest(m.path, m.serialize, m.deserialize, req, tracedMetadata(), { deadline }, (err, res) =>
          err || res === undefined ? reject(err ?? StrataError.io(`${OPERATIONS[op].method} answered nothing`)) : resolve(res),
        );
      });
    return OPERATIONS[op].idempotent ? this.idempotent(attempt) : this.once(attempt);
  }

  async stat(ref: LayerRef, path: Path): Promise<Attr> {
    return must((await this.call('stat', { layer: layerRefToProto(ref), path: toPath(path) })).attr);
  }

  readDirPage(ref: LayerRef, path: Path, offset = 0, limit = 0): Promise<ReadDirResponse> {
    return this.call('readDir', { layer: layerRefToProto(ref), path: toPath(path), offset, limit });
  }

  /** Every entry of a directory, page after page. */
  async readDir(ref: LayerRef, path: Path): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    for (;;) {
      const page = await this.readDirPage(ref, path, out.length);
      out.push(...page.entries);
      if (page.eof || page.entries.length === 0) return out;
    }
  }

  async readLink(ref: LayerRef, path: Path): Promise<Buffer> {
    return (await this.call('readLink', { layer: layerRefToProto(ref), path: toPath(path) })).target;
  }

  async listXattr(ref: LayerRef, path: Path): Promise<string[]> {
    return (await this.call('listXattr', { layer: layerRefToProto(ref), path: toPath(path) })).names;
  }

  async getXattr(ref: LayerRef, path: Path, name: string): Promise<Buffer> {
    return (await this.call('getXattr', { layer: layerRefToProto(ref), path: toPath(path), name })).value;
  }

  statFs(ref: LayerRef): Promise<StatFsResponse> {
    return this.call('statFs', { layer: layerRefToProto(ref) });
  }

  /**
   * A byte range as chunks (length 0: to end of file). When the resolver
   * serving it goes away, the rest is asked of another one from the first
   * byte not yet received: nothing is lost or repeated.
   */
  async *read(ref: LayerRef, path: Path, offset = 0, length = 0): AsyncGenerator<Buffer> {
    let pos = offset;
    const end = length === 0 ? Infinity : offset + length;
    yield* this.resumable(
      (e, deadline) =>
        e.projection.read(
          { layer: layerRefToProto(ref), path: toPath(path), offset: pos, length: end === Infinity ? 0 : end - pos },
          tracedMetadata(),
          deadline ? { deadline } : {},
        ),
      (msg) => {
        pos += msg.data.length;
        return msg.data.length > 0 ? [msg.data] : [];
      },
      () => pos >= end,
    );
  }

  async readFile(ref: LayerRef, path: Path): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.read(ref, path)) parts.push(chunk);
    return Buffer.concat(parts);
  }

  /** A subtree's metadata in walk order; resumed after a resolver failure by skipping what was received. */
  async *walk(ref: LayerRef, path: Path, options: { maxDepth?: number; includeLinkTargets?: boolean } = {}): AsyncGenerator<WalkEntry[]> {
    const progress = new Progress();
    yield* this.resumable(
      (e, deadline) => {
        progress.restart();
        return e.projection.walk(
          { layer: layerRefToProto(ref), path: toPath(path), maxDepth: options.maxDepth ?? 0, includeLinkTargets: options.includeLinkTargets ?? false },
          tracedMetadata(),
          deadline ? { deadline } : {},
        );
      },
      (msg) => progress.fresh(msg.entries),
      () => false,
    );
  }

  /** Changes from one layer to another, sorted by path; resumed like walk. */
  async *diff(from: LayerRef, to: LayerRef, path: Path = '/'): AsyncGenerator<Change[]> {
    const progress = new Progress();
    yield* this.resumable(
      (e, deadline) => {
        progress.restart();
        return e.diff.diff({ from: layerRefToProto(from), to: layerRefToProto(to), path: toPath(path) }, tracedMetadata(), deadline ? { deadline } : {});
      },
      (msg) =>
        progress
          .fresh(msg.changes)
          .map((batch) => batch.map((c): Change => ({ path: c.path, kind: changeKindFromProto(c.kind), before: c.before, after: c.after, ...(c.error ? { error: c.error } : {}) }))),
      () => false,
    );
  }

  // ---- plumbing ----

  private deadline(): number {
    return Date.now() + this.deadlineMs;
  }

  private idempotent<T>(attempt: (e: Endpoint, deadline: number) => Promise<T>): Promise<T> {
    return this.attempts(this.retry, attempt);
  }

  private once<T>(attempt: (e: Endpoint, deadline: number) => Promise<T>): Promise<T> {
    return this.attempts({ ...this.retry, attempts: 1 }, attempt);
  }

  /**
   * withRetry with every attempt's failure said in words (transportError),
   * and, when no resolver could be reached, the last failure of each one
   * tried in the one error the caller sees.
   */
  private async attempts<T>(policy: RetryPolicy, attempt: (e: Endpoint, deadline: number) => Promise<T>): Promise<T> {
    const unreachable = new Failures();
    await this.pool.ready();
    try {
      return await withRetry(this.pool, policy, this.deadline(), (e, d) =>
        attempt(e, d).catch((err: unknown) => {
          throw unreachable.note(transportError(err, e.address, this.deadlineMs, e.secure), e.address);
        }),
      );
    } catch (err) {
      throw unreachable.combined(err);
    }
  }

  /**
   * Runs a server stream; when it fails with a retryable error, opens it again
   * on the next resolver (open() re-reads the caller's progress) until done.
   */
  private async *resumable<M, T>(
    open: (e: Endpoint, deadline: number | undefined) => ClientReadableStream<M>,
    take: (msg: M) => T[],
    done: () => boolean,
  ): AsyncGenerator<T> {
    const deadline = this.streamDeadlineMs ? Date.now() + this.streamDeadlineMs : undefined;
    const unreachable = new Failures();
    let failures = 0;
    await this.pool.ready();
    for (;;) {
      const endpoint = this.pool.pick();
      const stream = open(endpoint, deadline);
      const silent = this.watchSilence(endpoint, stream);
      try {
        for await (const msg of stream as AsyncIterable<M>) {
          failures = 0;
          for (const item of take(msg)) yield item;
        }
        return;
      } catch (err) {
        const e = unreachable.note(silent.timedOut ?? transportError(err, endpoint.address, this.streamDeadlineMs, endpoint.secure), endpoint.address);
        if (done()) return;
        // Not cancelled by us: this generator cancels a stream only in `finally` or when it stayed silent (a timeout, not retried).
        if (!isRetryable(e, false) || ++failures >= this.retry.attempts) throw unreachable.combined(e);
        await sleep(systemClock, this.retry.backoffMs * 2 ** (failures - 1));
      } finally {
        silent.stop();
        stream.cancel();
      }
    }
  }

  /**
   * A stream has no deadline of its own (a diff of two big images may take
   * minutes), but a stream whose channel is still not connected one unary
   * deadline after it was opened has reached no resolver: a peer that takes
   * the TCP connection and never speaks HTTP/2 would otherwise hold it for
   * ever. Cancels the stream then and says so in `timedOut`.
   */
  private watchSilence(endpoint: Endpoint, stream: { cancel(): void }): { timedOut: StrataError | undefined; stop(): void } {
    const watch: { timedOut: StrataError | undefined; stop(): void } = { timedOut: undefined, stop: () => clearTimeout(timer) };
    const timer = setTimeout(() => {
      if (endpoint.channel.getConnectivityState(false) === connectivityState.READY) return;
      watch.timedOut = noAnswer(endpoint.address, this.deadlineMs);
      stream.cancel();
    }, this.deadlineMs);
    timer.unref();
    return watch;
  }
}

/** The last transport failure of each resolver a call tried, so the final error can name them all. */
class Failures {
  private readonly byAddress = new Map<string, TransportError>();

  note(err: StrataError, address: string): StrataError {
    if (isTransportError(err)) this.byAddress.set(address, err);
    else this.byAddress.delete(address);
    return err;
  }

  /** `err` itself, unless it is a transport failure and several resolvers failed that way. */
  combined(err: unknown): unknown {
    if (!isTransportError(err) || this.byAddress.size < 2) return err;
    return combineTransportErrors([...this.byAddress.values()]);
  }
}

/**
 * Items of a deterministic stream received so far. A replay of the stream
 * on another resolver yields the same items in the same order, so after a
 * restart the first `received` ones are dropped.
 */
class Progress {
  private received = 0;
  private skip = 0;

  restart(): void {
    this.skip = this.received;
  }

  /** The part of a batch not seen before, as a list of zero or one batch. */
  fresh<T>(batch: T[]): T[][] {
    const drop = Math.min(this.skip, batch.length);
    this.skip -= drop;
    const out = drop > 0 ? batch.slice(drop) : batch;
    this.received += out.length;
    return out.length > 0 ? [out] : [];
  }
}

function must<T>(value: T | undefined): T {
  if (value === undefined) throw new StrataError(Errno.EIO, 'resolver answered without the expected message', { code: GrpcCode.INTERNAL });
  return value;
}
