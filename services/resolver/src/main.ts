import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { format, getSystemErrorMap } from 'node:util';
import { logVerbosity as LogVerbosity, setLogger, setLogVerbosity } from '@grpc/grpc-js';
import { parseClusterNodes } from '@strata/cache';
import {
  EXIT_CONFIG,
  LOG_LEVELS,
  ServiceConfig,
  failWith,
  parseServiceArgs,
  addressProblem,
  defineOptions,
  directoryProblem,
  fileProblem,
  effectiveConfig,
  metricsListenOption,
  parseMetricsListen,
  renderYaml,
  shadowedText,
  type LoadedConfig,
  type ServiceArgs,
  type SourceKind,
} from '@strata/config';
import { errorMessage, isStrataError } from '@strata/errors';
import { isHostIdentity, validateIdentity } from '@strata/layers';
import { buildInfo, createLogger, redactSecrets, onShutdown, setHealthCheck, startTelemetry, stopTelemetry, type Logger } from '@strata/telemetry';
import { parseDataListen } from './grpc/data-listen';
import { DEFAULT_LIMITS, MIN_MESSAGE_BYTES } from './grpc/limits';
import { ReloadableServerCredentials, isLoopbackHost } from './grpc/tls';
import { Resolver } from './resolver';

const SERVICE = 'strata resolver';
/** The service could not start (the port is taken, the store is unreadable). */
const EXIT_START = 1;

const CLUSTER_SCHEMES = ['redis+cluster:', 'redis-cluster:', 'rediss+cluster:'];

/** Only the default store is created: a directory someone named and mistyped must not become an empty store. */
function storeProblem(dir: string, source: SourceKind): string | undefined {
  const problem = directoryProblem(dir, { mayCreate: source === 'default', access: 'read' });
  return problem?.endsWith('does not exist') ? `${problem} (only the default ./store is created)` : problem;
}

/** The URL forms libs/cache opens, checked without connecting. */
function redisProblem(url: string): string | undefined {
  const scheme = url.slice(0, url.indexOf(':') + 1);
  if (CLUSTER_SCHEMES.includes(scheme)) {
    try {
      parseClusterNodes(url);
      return undefined;
    } catch (err) {
      return errorMessage(err);
    }
  }
  if (scheme !== 'redis:' && scheme !== 'rediss:') return `expected redis://, rediss:// or redis+cluster:// URL, got ${JSON.stringify(url)}`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `not a URL: ${JSON.stringify(url)}`;
  }
  if (u.hostname === '') return `no host in ${JSON.stringify(url)}`;
  if (u.pathname !== '' && u.pathname !== '/' && !/^\/[0-9]+$/.test(u.pathname)) return `the path of ${JSON.stringify(url)} must be a database number (/0)`;
  return undefined;
}

/** An --admin identity as grants name identities; host users are vouched for by agents, never administrators. */
function adminProblem(identities: readonly string[]): string[] {
  const problems: string[] = [];
  for (const identity of identities) {
    try {
      validateIdentity(identity);
      if (isHostIdentity(identity)) problems.push(`"${identity}" is a host user's identity: an administrator is known by its client certificate`);
    } catch (err) {
      problems.push(errorMessage(err));
    }
  }
  return problems;
}



/** Everything the resolver can be told: its flags, variables and configuration-file keys. */
export const RESOLVER_OPTIONS = defineOptions({
  store: {
    kind: 'path',
    arg: 'dir',
    env: 'STRATA_STORE',
    default: 'store',
    defaultHelp: './store in the working directory, the one store created if missing',
    help: 'image store root; a directory given here must exist',
    check: storeProblem,
  },
  listen: {
    kind: 'string',
    arg: 'host:port',
    env: 'STRATA_LISTEN',
    default: '127.0.0.1:7400',
    help: 'address to serve on (port 0: any free port, logged at start)',
    check: (v) => addressProblem(v, { allowPortZero: true }),
  },
  'data-listen': {
    kind: 'string',
    arg: 'host:port',
    env: 'STRATA_RESOLVER_DATA_LISTEN',
    defaultHelp: 'the host of --listen, a port the system picks (announced to agents in their Session)',
    help: 'the data stream (file reads beside the gRPC port) on this address, so a firewall can admit it; port 0: any free port on HOST; 0 or off: no data stream (as STRATA_DATA_STREAM=0), every read over the Session; a port that cannot be bound fails the start',
    check: (v) => {
      const r = parseDataListen(v);
      return 'problem' in r ? r.problem : undefined;
    },
  },
  redis: {
    kind: 'string',
    arg: 'url',
    env: 'STRATA_REDIS_URL',
    help: 'shared metadata cache: redis://host:port, rediss://host:port or redis+cluster://h:p,h:p (default none: in-process cache only)',
    check: redisProblem,
    // --check-config output must not leak the Redis password into terminals and CI logs.
    show: redactSecrets,
  },
  'tls-cert': {
    kind: 'path',
    arg: 'file',
    env: 'STRATA_RESOLVER_TLS_CERT',
    help: 'serve TLS with this PEM certificate (chain); with --tls-key; read again on SIGHUP',
    check: fileProblem,
  },
  'tls-key': { kind: 'path', arg: 'file', env: 'STRATA_RESOLVER_TLS_KEY', help: 'the PEM private key of --tls-cert', check: fileProblem },
  'tls-client-ca': {
    kind: 'path',
    arg: 'file',
    env: 'STRATA_RESOLVER_TLS_CLIENT_CA',
    help: 'mutual TLS: every caller must present a certificate signed by a CA in this PEM file',
    check: fileProblem,
  },
  plaintext: {
    kind: 'boolean',
    env: 'STRATA_RESOLVER_PLAINTEXT',
    help: 'allow serving without TLS on a non-loopback --listen address (anyone who reaches the port reads and changes every layer); with --tls-cert it serves TLS',
  },
  'unenforced-read-only': {
    kind: 'boolean',
    help: 'without --tls-client-ca on a store that enforces access control (one a mutual-TLS resolver has served, or with grants): serve it anyway, read-only, to every caller; refused otherwise (docs/operations.md)',
  },
  admin: {
    kind: 'string-list',
    arg: 'identity',
    env: 'STRATA_RESOLVER_ADMINS',
    split: ',',
    help: 'with --tls-client-ca: this identity (a client certificate\'s URI SAN, else its CN) manages every layer and grant, also before any grant exists (repeatable; comma-separated)',
    check: adminProblem,
  },
  'audit-log': {
    kind: 'path',
    arg: 'file',
    env: 'STRATA_RESOLVER_AUDIT_LOG',
    defaultHelp: '<store>/.strata/audit/<host name>.log',
    help: 'append audit events (layer and policy changes, refused calls) to this file as JSON lines, created 0600; reopened on SIGHUP; {host} in it is this host\'s (pod\'s) name, so replicas sharing a store write one file each',
  },
  'max-message-bytes': {
    kind: 'positive-int',
    arg: 'n',
    env: 'STRATA_RESOLVER_MAX_MESSAGE_BYTES',
    default: DEFAULT_LIMITS.maxMessageBytes,
    help: 'largest request message accepted; a bigger one is refused with RESOURCE_EXHAUSTED before it is parsed',
    check: (n) => (n < MIN_MESSAGE_BYTES ? `must be at least ${MIN_MESSAGE_BYTES} (a request with a path of PATH_MAX bytes)` : undefined),
  },
  'max-streams-per-identity': {
    kind: 'positive-int',
    arg: 'n',
    env: 'STRATA_RESOLVER_MAX_STREAMS_PER_IDENTITY',
    default: DEFAULT_LIMITS.maxStreamsPerIdentity,
    help: 'calls (unary, streams, Sessions) one client identity may have open at once over all its connections, refused beyond with RESOURCE_EXHAUSTED; also the HTTP/2 limit of concurrent streams per connection, the bound for callers without an identity',
  },
  'session-inflight': {
    kind: 'positive-int',
    arg: 'n',
    env: 'STRATA_RESOLVER_SESSION_INFLIGHT',
    default: DEFAULT_LIMITS.sessionInflight,
    help: 'requests one Session stream may have in flight (being answered, or answered but not yet taken by the client); at the limit the stream is not read until the client takes answers',
  },
  'cache-mb': { kind: 'positive-int', arg: 'n', default: 256, help: 'in-process metadata cache size in MiB' },
  'grace-ms': { kind: 'positive-int', arg: 'n', default: 10_000, help: 'how long SIGTERM waits for calls in flight' },
  'metrics-listen': metricsListenOption('STRATA_RESOLVER_METRICS_LISTEN', 9464),
  'metrics-port': {
    kind: 'port',
    arg: 'n',
    help: 'older form of --metrics-listen: metrics on this port of the host --listen names (never wider than the API); OTLP export follows the OTEL_* variables',
  },
  'log-level': { kind: 'string', arg: 'level', env: 'STRATA_LOG_LEVEL', default: 'info', choices: LOG_LEVELS, help: 'trace, debug, info, warn or error' },
});

const CONFIG = new ServiceConfig(RESOLVER_OPTIONS, 'STRATA_RESOLVER_CONFIG');

function fail(code: number, lines: readonly string[]): never {
  return failWith(SERVICE, code, lines);
}

/** Flags, variables and file, checked; exits 2 with one line per problem. */
function configure(argv: readonly string[]): ServiceArgs<typeof RESOLVER_OPTIONS> {
  const { loaded, checkOnly, json } = parseServiceArgs(CONFIG, { service: SERVICE, description: 'serve the strata.v1 API over an image store', example: 'cache-mb: 512' }, argv);
  const problems = transportProblems(loaded.values);
  if (problems.length > 0) fail(EXIT_CONFIG, problems);
  return { loaded, checkOnly, json };
}

type ResolverValues = LoadedConfig<typeof RESOLVER_OPTIONS>['values'];

/**
 * TLS options that only make sense together, and plaintext only where it
 * was asked for: the loopback default (npm start, tests) needs nothing,
 * any other address either TLS or --plaintext.
 */
function transportProblems(o: ResolverValues): string[] {
  const problems: string[] = [];
  const tls = o.tlsCert !== undefined || o.tlsKey !== undefined;
  if (o.tlsCert !== undefined && o.tlsKey === undefined) problems.push('--tls-cert needs --tls-key (the private key of that certificate)');
  if (o.tlsKey !== undefined && o.tlsCert === undefined) problems.push('--tls-key needs --tls-cert (the certificate of that key)');
  if (o.tlsClientCa !== undefined && !tls) problems.push('--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)');
  const host = o.listen.slice(0, o.listen.lastIndexOf(':'));
  if (!tls && o.plaintext !== true && !isLoopbackHost(host)) {
    problems.push(`--listen ${o.listen} is reachable from other hosts: give --tls-cert and --tls-key (and --tls-client-ca for mutual TLS), or --plaintext to serve it unencrypted`);
  }
  const data = o.dataListen === undefined ? undefined : parseDataListen(o.dataListen);
  if (data !== undefined && 'kind' in data && data.kind === 'at') {
    if (!tls && o.plaintext !== true && !isLoopbackHost(data.host)) {
      problems.push(`--data-listen ${o.dataListen} is reachable from other hosts and serves every layer's files: give --tls-cert and --tls-key, or --plaintext to serve it unencrypted`);
    }
    if (process.env.STRATA_DATA_STREAM === '0') problems.push(`--data-listen ${o.dataListen} asks for the data stream and STRATA_DATA_STREAM=0 turns it off: unset one (--data-listen off also turns it off)`);
  }
  return problems;
}

/** The TLS credentials asked for; a file that does not make an identity stops the start (exit 2). */
function serverCredentials(o: ResolverValues): ReloadableServerCredentials | undefined {
  if (o.tlsCert === undefined || o.tlsKey === undefined) return undefined;
  try {
    return new ReloadableServerCredentials({ cert: o.tlsCert, key: o.tlsKey, clientCa: o.tlsClientCa });
  } catch (err) {
    fail(EXIT_CONFIG, [errorMessage(err)]);
  }
}

/** SIGHUP: certificate, key and client CA read again; new connections get them, open ones keep theirs. A bad file keeps the old identity. */
function reloadOnHangup(credentials: ReloadableServerCredentials, o: ResolverValues, log: Logger): void {
  process.on('SIGHUP', () => {
    try {
      credentials.reload();
      log.info({ event: 'resolver.tls_reloaded', cert: o.tlsCert, key: o.tlsKey, clientCa: o.tlsClientCa }, 'TLS certificate reloaded');
    } catch (err) {
      log.error({ event: 'resolver.tls_reload_failed', err: errorMessage(err) }, `TLS reload failed, still serving the previous certificate: ${errorMessage(err)}`);
    }
  });
}

/**
 * What stopped the start, in one line. grpc-js reports a failed bind as a
 * plain Error ("No address added out of total 1 resolved errors: [listen
 * EADDRINUSE: address already in use 1.2.3.4:7400]"); that one is said
 * plainly with the address. Store and catalog errors (strata's own, or
 * node's with their path) are already clear.
 */
function startFailure(address: string, err: unknown): string {
  const message = errorMessage(err);
  const fromBind = !isStrataError(err) && typeof (err as { code?: unknown }).code !== 'string' && /No address added|Name resolution failed|\blisten E[A-Z]+/.test(message);
  if (!fromBind) return message;
  const code = /\blisten (E[A-Z]+)\b/.exec(message)?.[1];
  if (code) {
    for (const [name, text] of getSystemErrorMap().values()) if (name === code) return `cannot listen on ${address}: ${text}`;
  }
  if (/Name resolution failed/.test(message)) return `cannot listen on ${address}: the host name does not resolve`;
  return `cannot listen on ${address}: ${message}`;
}

/** grpc-js logs through pino from here on, so stderr stays one JSON object per line. */
function grpcLogsTo(log: Logger): void {
  const line =
    (level: 'debug' | 'info' | 'warn') =>
    (...args: unknown[]): void =>
      log[level]({ event: 'grpc.log' }, format(...args));
  setLogger({ error: line('warn'), info: line('info'), debug: line('debug') });
}

/** The verbosity the operator asked grpc-js for ($GRPC_NODE_VERBOSITY, $GRPC_VERBOSITY), as grpc-js itself reads it. */
function grpcVerbosity(): LogVerbosity {
  switch ((process.env.GRPC_NODE_VERBOSITY ?? process.env.GRPC_VERBOSITY ?? '').toUpperCase()) {
    case 'DEBUG':
      return LogVerbosity.DEBUG;
    case 'INFO':
      return LogVerbosity.INFO;
    case 'NONE':
      return LogVerbosity.NONE;
    default:
      return LogVerbosity.ERROR;
  }
}

/** --metrics-listen, else --metrics-port on the host of --listen, else none. */
function metricsAddress(o: ResolverValues): { host: string; port: number } | undefined {
  if (o.metricsListen !== undefined) {
    const r = parseMetricsListen(o.metricsListen);
    return 'problem' in r ? undefined : r;
  }
  if (o.metricsPort === undefined) return undefined;
  const host = o.listen.slice(0, o.listen.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
  return { host, port: o.metricsPort };
}

/** `strata resolver ...` */
export async function main(argv: readonly string[]): Promise<void> {
  const { loaded, checkOnly, json } = configure(argv);
  if (checkOnly) {
    const out = json ? `${JSON.stringify(effectiveConfig(RESOLVER_OPTIONS, loaded), null, 2)}\n` : renderYaml(RESOLVER_OPTIONS, loaded, `${SERVICE}: configuration is valid`);
    process.stdout.write(out);
    return;
  }
  const o = loaded.values;
  const credentials = serverCredentials(o);
  // A flag or file value beats the environment (which grpc/data-listen.ts reads when none is given); main.ts refused bad values already.
  const dataListen = o.dataListen === undefined ? undefined : parseDataListen(o.dataListen);
  const log = createLogger({ service: 'strata-resolver', level: o.logLevel });
  grpcLogsTo(log);
  // A unit's Environment= or a flag over the file the operator edited: said before anything else.
  for (const line of shadowedText(loaded)) log.warn({ event: 'config.shadowed', option: line.slice(0, line.indexOf(':')), detail: line }, `configuration: ${line}`);
  let telemetry: Awaited<ReturnType<typeof startTelemetry>>;
  try {
    telemetry = await startTelemetry({ service: 'strata-resolver', metricsListen: metricsAddress(o) });
  } catch (err) {
    fail(EXIT_START, [errorMessage(err)]);
  }

  if (loaded.origins.store?.source === 'default') await fs.mkdir(o.store, { recursive: true });
  let resolver: Resolver;
  // A failed bind is reported once, by us: grpc-js would log its own version of it first.
  setLogVerbosity(LogVerbosity.NONE);
  try {
    resolver = await Resolver.start({
      store: o.store,
      listen: o.listen,
      credentials,
      redisUrl: o.redis,
      cacheMb: o.cacheMb,
      log,
      // Only mutual TLS tells the resolver who calls: that is when the access policy is enforced.
      enforceAccess: credentials?.mutual === true,
      admins: o.admin ?? [],
      auditLog: o.auditLog,
      readOnly: o.unenforcedReadOnly === true,
      limits: { maxMessageBytes: o.maxMessageBytes, maxStreamsPerIdentity: o.maxStreamsPerIdentity, sessionInflight: o.sessionInflight },
      ...(dataListen !== undefined && !('problem' in dataListen) ? { dataListen } : {}),
    });
  } catch (err) {
    fail(EXIT_START, [startFailure(o.listen, err)]);
  }
  setLogVerbosity(grpcVerbosity());
  const served = resolver.server;
  setHealthCheck(() => ({ ok: served.state === 'serving', detail: served.state }));
  if (credentials) reloadOnHangup(credentials, o, log);
  const running = resolver;
  process.on('SIGHUP', () => {
    running.reopenAudit();
    log.info({ event: 'resolver.audit_reopened', file: running.audit.file }, 'audit log reopened');
  });
  const tls = credentials === undefined ? 'off' : credentials.mutual ? 'mutual' : 'on';
  log.info(
    {
      event: 'resolver.listening',
      ...buildInfo(),
      listen: o.listen,
      port: resolver.port,
      tls,
      store: path.resolve(o.store),
      cacheMb: o.cacheMb,
      redis: o.redis ? 'on' : 'off',
      config: loaded.file,
      limits: resolver.server.limits,
      ...telemetry,
    },
    'resolver ready',
  );
  const host = o.listen.slice(0, o.listen.lastIndexOf(':'));
  if (credentials === undefined && !isLoopbackHost(host)) {
    log.warn({ event: 'resolver.plaintext', listen: o.listen }, `serving ${o.listen} WITHOUT TLS (--plaintext): anyone who reaches it reads every layer, and changes layers and grants unless the store enforces access control`);
  }
  onShutdown(log, async () => {
    await resolver.stop(o.graceMs);
    await stopTelemetry();
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${SERVICE}: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
