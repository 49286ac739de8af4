import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentStateDir, certificateIdentity, defaultSocketPath, type AgentStatus } from '@strata/agent-control';
import { Endpoint, TLS_ENV, channelCredentials, exportTlsEnv, isTransportError, reloadTls, transportError, type ClientTlsFiles } from '@strata/client';
import { Metadata, type ChannelCredentials } from '@grpc/grpc-js';
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
  renderYaml,
  metricsListenOption,
  parseMetricsListen,
  shadowedText,
  type ServiceArgs,
} from '@strata/config';
import { GrpcCode, errorMessage, isStrataError } from '@strata/errors';
import { validateName } from '@strata/layers';
import { buildInfo, createLogger, onShutdown, setHealthCheck, startTelemetry, stopTelemetry, type Logger } from '@strata/telemetry';
import { sdNotify } from '@strata/fuse-kernel';
import { Agent } from './agent';
import type { DesiredMount } from './takeover/desired-state';
import { lookupHostUser } from './access/host-user';
import { AgentAudit } from './audit/agent-audit';
import { ControlServer } from './control/control-server';
import { agentDataDir, defaultDataCacheRoot } from './data-cache/cache-dir';
import { fuseAccessProblem } from './host/fuse-access';
import { FILE_OPENS, type FileOpens } from './mount/mount';

const SERVICE = 'strata agent';
/** The agent could not start (the socket is taken, a --mount failed). */
const EXIT_START = 1;

/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;
/** Pause between rounds of asking unreachable resolvers, on top of the wait inside each round. */
const RETRY_PAUSE_MS = 1_000;

interface MountFlag {
  layer: string;
  mountpoint: string;
  /** Not a --mount: one `strata mount` made, mounted again from the desired state (a failure is logged, not fatal). */
  restore?: DesiredMount;
}

/** Mounts one --mount or desired mount; a mountpoint already served (taken over) is left as it is. */
async function mountAtStart(agent: Agent, m: MountFlag): Promise<void> {
  if (agent.has(m.mountpoint)) return;
  await agent.mount(m.layer, m.mountpoint, m.restore ? { caller: m.restore.caller, hard: m.restore.hard, restored: true } : {});
}

/** A restored mount that failed for good: logged, the agent serves the rest. */
function restoreFailed(log: Logger, m: MountFlag, err: unknown): void {
  log.error({ event: 'agent.restore_failed', layer: m.layer, mountpoint: m.mountpoint, err: errorMessage(err) }, 'a mount of the desired state could not be mounted again');
}

/** LAYER:MOUNTPOINT, split at the first colon (a layer name has none; a path may). */
function parseMount(spec: string): MountFlag | string {
  const i = spec.indexOf(':');
  if (i <= 0 || i === spec.length - 1) return `expected LAYER:MOUNTPOINT, got ${JSON.stringify(spec)}`;
  const layer = spec.slice(0, i);
  const mountpoint = spec.slice(i + 1);
  if (!/^[0-9]+$/.test(layer)) {
    try {
      validateName(layer);
    } catch (err) {
      return errorMessage(err);
    }
  }
  if (!path.isAbsolute(mountpoint)) return `the mountpoint in ${JSON.stringify(spec)} must be an absolute path`;
  return { layer, mountpoint: path.resolve(mountpoint) };
}

function mountsProblem(specs: readonly string[]): string[] | string | undefined {
  const problems = specs.map(parseMount).filter((m): m is string => typeof m === 'string');
  if (problems.length > 0) return problems;
  const seen = new Set<string>();
  for (const m of specs.map(parseMount) as MountFlag[]) {
    if (seen.has(m.mountpoint)) return `${m.mountpoint} is mounted twice`;
    seen.add(m.mountpoint);
  }
  return undefined;
}

function resolversProblem(addresses: readonly string[]): string[] {
  return addresses.map((a) => addressProblem(a)).filter((p): p is string => p !== undefined);
}

function socketProblem(socket: string): string | undefined {
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) return `${socket} is longer than a unix socket path may be (${MAX_SOCKET_PATH} bytes)`;
  return directoryProblem(path.dirname(socket), { mayCreate: true, access: 'write' });
}

/** A group name (or number) as the group database knows it: its gid, or why not. */
function groupId(group: string): number | string {
  const r = spawnSync('getent', ['group', group], { encoding: 'utf8', timeout: 5_000 });
  const gid = r.status === 0 ? Number(r.stdout.split(':')[2]) : NaN;
  return Number.isInteger(gid) && gid >= 0 ? gid : `group ${JSON.stringify(group)} does not exist on this host`;
}

function socketGroupProblem(group: string): string | undefined {
  const gid = groupId(group);
  return typeof gid === 'string' ? gid : undefined;
}

/** Everything the agent can be told: its flags, variables and configuration-file keys. */
export const AGENT_OPTIONS = defineOptions({
  resolver: {
    kind: 'string-list',
    split: ',',
    arg: 'host:port',
    env: 'STRATA_RESOLVER',
    default: ['127.0.0.1:7400'],
    help: 'resolver address(es), comma-separated or repeated; a YAML list in the file',
    check: resolversProblem,
  },
  socket: {
    kind: 'path',
    arg: 'path',
    env: 'STRATA_AGENT_SOCKET',
    default: defaultSocketPath(),
    defaultHelp: '/run/strata/agent.sock as root, else strata-agent-<uid>.sock in the temp directory',
    help: 'control socket (its directory is created); the mounts it owns are listed next to it in <socket>.mounts.json',
    check: socketProblem,
  },
  'socket-group': {
    kind: 'string',
    arg: 'group',
    env: 'STRATA_AGENT_SOCKET_GROUP',
    help: 'open the control socket to this group (socket 0660, its directory 0750); without it root only (0600, 0700). Members who are not root mount only layers the policy grants them, on empty directories of their own',
    check: socketGroupProblem,
  },
  'audit-log': {
    kind: 'path',
    arg: 'file',
    env: 'STRATA_AGENT_AUDIT_LOG',
    defaultHelp: '<socket>.audit.log',
    help: 'audit trail of mounts, unmounts and refused control requests (JSON lines, 0600; reopened on SIGHUP)',
  },
  mount: { kind: 'string-list', arg: 'layer:mountpoint', help: 'mount at start, the mountpoint an absolute path', check: mountsProblem },
  takeover: {
    kind: 'boolean',
    env: 'STRATA_AGENT_TAKEOVER',
    default: true,
    help: 'take over the mounts a previous agent left, and leave every mount to the next agent at stop; --no-takeover clears them instead (then mounts again what `strata mount` made) and unmounts every mount at stop',
  },
  'request-timeout': {
    kind: 'positive-int',
    arg: 's',
    env: 'STRATA_AGENT_REQUEST_TIMEOUT',
    default: 30,
    help: 'a FUSE request not answered within this many seconds fails with EIO, also while the agent is stopped or between agents (`strata mount --hard` mounts wait instead)',
  },
  'tls-ca': { kind: 'path', arg: 'file', env: TLS_ENV.ca, help: 'speak TLS to the resolvers, verifying them against this PEM CA', check: fileProblem },
  'tls-cert': { kind: 'path', arg: 'file', env: TLS_ENV.cert, help: 'present this PEM certificate to resolvers that want mutual TLS, with --tls-key', check: fileProblem },
  'tls-key': { kind: 'path', arg: 'file', env: TLS_ENV.key, help: 'the PEM private key of --tls-cert', check: fileProblem },
  'deadline-ms': { kind: 'positive-int', arg: 'n', default: 3000, help: 'a FUSE operation fails with EIO when no resolver answered within this' },
  'chunk-cache-mb': { kind: 'positive-int', arg: 'n', default: 256, help: 'file data chunks held in memory, MiB' },
  'data-cache-mb': { kind: 'non-negative-int', arg: 'n', default: 4096, help: 'sealed files kept whole on disk and served by FUSE passthrough, MiB (0: off)' },
  'data-cache-dir': {
    kind: 'path',
    arg: 'dir',
    default: defaultDataCacheRoot(),
    defaultHelp: '/var/cache/strata as root, else strata-agent-<uid>-cache in the temp directory',
    help: 'where --data-cache-mb goes: the agent keeps its files in a directory of its own inside it (emptied at start, removed at stop)',
    check: (d: string) => directoryProblem(d, { mayCreate: true, access: 'write' }),
  },
  'store-view': {
    kind: 'path',
    arg: 'dir',
    env: 'STRATA_AGENT_STORE_VIEW',
    help: "the image store as this host sees it (the resolvers' --store, e.g. the same NFS export): sealed layers' file data is read from it directly by the extent maps the resolvers give, a dir: file handed to the kernel whole; checked at start to be the resolvers' store (docs/operations.md, Direct reads from the store)",
    check: (d: string) => directoryProblem(d, { mayCreate: false, access: 'read' }),
  },
  'file-opens': {
    kind: 'string',
    arg: 'mode',
    env: 'STRATA_AGENT_FILE_OPENS',
    default: 'auto',
    choices: FILE_OPENS,
    help: "who opens a new sealed mount's files: agent (every open asks the agent, answered natively; FUSE passthrough per file), kernel (the kernel opens them itself, FUSE no_open: no round trip per open, the page cache kept across opens, file data handed over served by the agent's pread instead of passthrough), auto (kernel wherever allowed; agent keeps passthrough, which pays for cold random reads of store files under --store-view; docs/operations.md). Never kernel for LIVE mounts (each open must drop a changed file's pages) nor audited ones (each open is logged): those open through the agent, with a log line. A mount taken over keeps the mode it was made with",
  },
  'attr-entries': { kind: 'positive-int', arg: 'n', default: 500_000, help: 'attribute cache entries per mount' },
  'prefetch-entries': { kind: 'non-negative-int', arg: 'n', default: 100_000, help: 'walk the tree into the caches at mount, up to this many entries (0: off)' },
  'sealed-timeout': { kind: 'positive-int', arg: 's', default: 3600, help: 'kernel entry/attr/negative cache seconds for sealed layers' },
  'metrics-listen': metricsListenOption('STRATA_AGENT_METRICS_LISTEN', 9465),
  'metrics-port': { kind: 'port', arg: 'n', help: 'older form of --metrics-listen: metrics on 127.0.0.1:N; OTLP export follows the OTEL_* variables' },
  'log-level': { kind: 'string', arg: 'level', env: 'STRATA_LOG_LEVEL', default: 'info', choices: LOG_LEVELS, help: 'trace, debug, info, warn or error' },
});

const CONFIG = new ServiceConfig(AGENT_OPTIONS, 'STRATA_AGENT_CONFIG');

function fail(code: number, lines: readonly string[]): never {
  return failWith(SERVICE, code, lines);
}

/** Flags, variables and file, checked; exits 2 with one line per problem. */
function configure(argv: readonly string[]): ServiceArgs<typeof AGENT_OPTIONS> {
  const { loaded, checkOnly, json } = parseServiceArgs(CONFIG, { service: SERVICE, description: 'hold the FUSE mounts of this host, served by the resolvers over one Session stream', example: 'deadline-ms: 5000' }, argv);
  const { tlsCert, tlsKey } = loaded.values;
  if (tlsCert !== undefined && tlsKey === undefined) fail(EXIT_CONFIG, ['--tls-cert needs --tls-key (the private key of that certificate)']);
  if (tlsKey !== undefined && tlsCert === undefined) fail(EXIT_CONFIG, ['--tls-key needs --tls-cert (the certificate of that key)']);
  return { loaded, checkOnly, json };
}

/** No resolver answered: a retry may succeed once one is back. */
function resolverAway(err: unknown): boolean {
  return isStrataError(err) && (err.retryable || err.code === GrpcCode.DEADLINE_EXCEEDED);
}

/**
 * Asks each resolver address for a connection, on channels of its own (the
 * agent's Session streams keep their own reconnect schedule).
 */
class ResolverProbe {
  private readonly endpoints: Endpoint[];

  constructor(addresses: readonly string[], creds: ChannelCredentials) {
    this.endpoints = addresses.map((a) => new Endpoint(a, creds));
  }

  get size(): number {
    return this.endpoints.length;
  }

  /** The addresses that did not connect within `ms` (all of them once `signal` aborts). */
  async unanswered(ms: number, signal?: AbortSignal): Promise<string[]> {
    const deadline = Date.now() + ms;
    const ready = await Promise.all(
      this.endpoints.map(
        (e) =>
          new Promise<boolean>((resolve) => {
            const abort = (): void => resolve(false);
            // Removed again: an outage runs many rounds on the same signal.
            signal?.addEventListener('abort', abort, { once: true });
            e.layers.waitForReady(deadline, (err) => {
              signal?.removeEventListener('abort', abort);
              resolve(err === undefined);
            });
          }),
      ),
    );
    return this.endpoints.filter((_, i) => !ready[i]).map((e) => e.address);
  }

  /**
   * Why `address` did not connect, when something answered but the
   * handshake failed (TLS on one side only, a certificate refused: the
   * operator's to fix, not an outage): one call's error in words.
   */
  async handshakeFailure(address: string, ms: number): Promise<string | undefined> {
    const e = this.endpoints.find((x) => x.address === address);
    if (!e) return undefined;
    const err = await new Promise<unknown>((resolve) => e.layers.listLayers({ pageSize: 1, pageToken: '' }, new Metadata(), { deadline: Date.now() + ms }, (error) => resolve(error ?? undefined)));
    if (err === undefined) return undefined;
    const t = transportError(err, address, ms, e.secure);
    return isTransportError(t) && (t.failure === 'tls' || t.failure === 'not-grpc') ? t.message : undefined;
  }

  close(): void {
    for (const e of this.endpoints) e.close();
  }
}

/**
 * The --mount flags that had to wait for a resolver: tried again whenever
 * one answers, until each is mounted or fails for a reason a retry cannot
 * fix (logged, the agent keeps serving the rest).
 */
async function mountWhenAnswered(agent: Agent, pending: MountFlag[], probe: ResolverProbe, deadlineMs: number, signal: AbortSignal, log: Logger): Promise<void> {
  while (pending.length > 0 && !signal.aborted) {
    const down = await probe.unanswered(deadlineMs, signal);
    if (signal.aborted) return;
    if (down.length < probe.size) {
      for (const m of [...pending]) {
        try {
          await mountAtStart(agent, m);
          pending.splice(pending.indexOf(m), 1);
        } catch (err) {
          if (resolverAway(err)) continue;
          pending.splice(pending.indexOf(m), 1);
          if (m.restore) {
            restoreFailed(log, m, err);
            continue;
          }
          const message = errorMessage(err);
          log.error({ event: 'agent.start_failed', layer: m.layer, mountpoint: m.mountpoint, err: message }, 'a --mount failed');
          process.stderr.write(`${SERVICE}: --mount ${m.layer}:${m.mountpoint}: ${message}\n`);
        }
      }
    }
    if (pending.length === 0) break;
    await sleep(RETRY_PAUSE_MS, undefined, { signal }).catch(() => undefined);
  }
}

/** sd_notify(3) when systemd asked for it ($NOTIFY_SOCKET); a refused notification is logged, never fatal. */
function notify(log: Logger, fields: Record<string, string | number>): void {
  try {
    if (sdNotify(fields)) log.debug({ event: 'agent.notified', fields }, 'told the service manager');
  } catch (err) {
    log.warn({ event: 'agent.notify_failed', err: errorMessage(err) }, 'could not notify the service manager');
  }
}

/** `strata agent ...` */
export async function main(argv: readonly string[]): Promise<void> {
  const { loaded, checkOnly, json } = configure(argv);
  if (checkOnly) {
    const out = json ? `${JSON.stringify(effectiveConfig(AGENT_OPTIONS, loaded), null, 2)}\n` : renderYaml(AGENT_OPTIONS, loaded, `${SERVICE}: configuration is valid`);
    process.stdout.write(out);
    return;
  }
  const o = loaded.values;
  const tls: ClientTlsFiles = { ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey };
  let creds: ChannelCredentials;
  try {
    creds = channelCredentials(tls);
  } catch (err) {
    fail(EXIT_CONFIG, [errorMessage(err)]);
  }
  // The agent's own client (agent.ts) reads the variables: flags and file values go there too.
  exportTlsEnv(tls);
  const mounts = (o.mount ?? []).map(parseMount) as MountFlag[];
  const log = createLogger({ service: 'strata-agent', level: o.logLevel });
  // Before anything is created (the data cache, the socket): an agent that cannot mount says so and exits.
  const noFuse = fuseAccessProblem();
  if (noFuse) {
    log.error({ event: 'agent.start_failed', errno: noFuse.errnoName, err: noFuse.message }, 'cannot mount FUSE filesystems');
    fail(EXIT_START, [noFuse.message]);
  }
  for (const line of shadowedText(loaded)) log.warn({ event: 'config.shadowed', option: line.slice(0, line.indexOf(':')), detail: line }, `configuration: ${line}`);
  const listen = o.metricsListen === undefined ? undefined : parseMetricsListen(o.metricsListen);
  const telemetry = await startTelemetry({
    service: 'strata-agent',
    ...(listen && !('problem' in listen) ? { metricsListen: listen } : {}),
    ...(o.metricsPort === undefined ? {} : { metricsPort: o.metricsPort }),
  });

  const startedAt = new Date().toISOString();
  const tlsMode = creds._isSecure() ? (o.tlsCert !== undefined ? 'mutual' : 'on') : 'off';
  const identity = o.tlsCert !== undefined ? (certificateIdentity(o.tlsCert) ?? 'unreadable certificate') : undefined;
  const build = buildInfo();
  let agent: Agent | undefined;
  let control: ControlServer;
  const audit = AgentAudit.open(o.auditLog ?? `${o.socket}.audit.log`, log);
  const group = o.socketGroup !== undefined ? { name: o.socketGroup, gid: groupId(o.socketGroup) as number } : undefined;
  try {
    const a = (agent = await Agent.start({
      resolver: o.resolver.join(','),
      stateFile: `${o.socket}.mounts.json`,
      stateDir: agentStateDir(o.socket),
      takeover: o.takeover,
      requestTimeoutMs: o.requestTimeout * 1000,
      deadlineMs: o.deadlineMs,
      chunkCacheBytes: o.chunkCacheMb * 1024 * 1024,
      attrEntries: o.attrEntries,
      prefetchEntries: o.prefetchEntries,
      sealedTimeoutSeconds: o.sealedTimeout,
      dataCache: { dir: agentDataDir(o.dataCacheDir, o.socket), maxBytes: o.dataCacheMb * 1024 * 1024 },
      ...(o.storeView !== undefined ? { storeView: o.storeView } : {}),
      fileOpens: o.fileOpens as FileOpens,
      audit,
      log,
    }));
    control = await ControlServer.listen(
      o.socket,
      async (req, peer) => {
        switch (req.op) {
          case 'mount':
            return { ok: true, mount: await a.mount(req.layer, req.mountpoint, { caller: await lookupHostUser(peer), hard: req.hard === true, desired: true }) };
          case 'umount':
            await a.umount(req.mountpoint, req.lazy, await lookupHostUser(peer));
            return { ok: true };
          case 'mounts':
            return { ok: true, mounts: await a.list() };
          case 'status': {
            const status: AgentStatus = {
              pid: process.pid,
              version: build.version,
              ...(build.commit ? { commit: build.commit } : {}),
              node: build.node,
              startedAt,
              socket: o.socket,
              tls: { mode: tlsMode, ...(identity !== undefined ? { identity } : {}) },
              ...(await a.view()),
            };
            return { ok: true, status };
          }
        }
      },
      log,
      { group, onRefused: (peer, reason, detail) => audit.refused(peer, reason, detail) },
    );
  } catch (err) {
    // The data cache goes with an agent that could not start.
    await agent?.stop().catch(() => undefined);
    // Nothing is running yet: one plain line says it all (a JSON copy of it would be a second line).
    fail(EXIT_START, [errorMessage(err)]);
  }
  const started = agent;
  const probe = new ResolverProbe(o.resolver, creds);
  // After a rotation the audit trail goes on in a new file at the same path.
  process.on('SIGHUP', () => {
    audit.reopen();
    log.info({ event: 'agent.audit_reopened', file: audit.file }, 'audit log reopened');
  });
  if (creds._isSecure()) {
    // New connections (a reconnect, another resolver) present the new certificate; open Sessions and mounts stay.
    process.on('SIGHUP', () => {
      try {
        reloadTls();
        log.info({ event: 'agent.tls_reloaded', ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey }, 'TLS files reloaded');
      } catch (err) {
        log.error({ event: 'agent.tls_reload_failed', err: errorMessage(err) }, `TLS reload failed, still using the previous files: ${errorMessage(err)}`);
      }
    });
  }
  const retries = new AbortController();
  let retrying: Promise<void> = Promise.resolve();
  onShutdown(log, async () => {
    notify(log, { STOPPING: 1, STATUS: 'unmounting' });
    retries.abort();
    await retrying;
    probe.close();
    await control.close();
    await started.stop(o.takeover);
    await audit.close();
    await stopTelemetry();
  });

  // "Ready" has to be true: an agent whose resolvers are all away serves nothing until one answers.
  // Asked alongside, not after: a refused handshake is named in the warning without delaying it.
  const handshakes = new Map(o.resolver.map((a) => [a, probe.handshakeFailure(a, o.deadlineMs)]));
  const unreachable = await probe.unanswered(o.deadlineMs);
  const reasons = await Promise.all(unreachable.map((a) => handshakes.get(a)));
  const refused = reasons.filter((m): m is string => m !== undefined);
  const silent = unreachable.filter((_, i) => reasons[i] === undefined);
  const reachable = unreachable.length < o.resolver.length;
  started.unansweredAtStart(unreachable);
  const pending: MountFlag[] = [];
  let mounted = 0;
  // What `strata mount` made and no takeover put back (a reboot, --no-takeover), after the --mount flags.
  const flagged = new Set(mounts.map((m) => m.mountpoint));
  const restore: MountFlag[] = started.restorable().filter((d) => !flagged.has(d.mountpoint)).map((d) => ({ layer: d.layer, mountpoint: d.mountpoint, restore: d }));
  for (const m of [...mounts, ...restore]) {
    if (!reachable) {
      pending.push(m);
      continue;
    }
    try {
      await mountAtStart(started, m);
      mounted++;
    } catch (err) {
      if (resolverAway(err)) {
        pending.push(m);
        continue;
      }
      if (m.restore) {
        restoreFailed(log, m, err);
        continue;
      }
      const message = errorMessage(err);
      log.error({ event: 'agent.start_failed', layer: m.layer, mountpoint: m.mountpoint, err: message }, 'a --mount failed');
      retries.abort();
      probe.close();
      await control.close();
      await started.stop();
      fail(EXIT_START, [`--mount ${m.layer}:${m.mountpoint}: ${message}`]);
    }
  }
  // The warning before the ready line: whoever waits for agent.ready has read it by then.
  if (unreachable.length > 0) {
    const waiting = pending.length > 0 ? `; ${pending.length} --mount ${pending.length === 1 ? 'waits' : 'wait'} for it` : '';
    for (const m of refused) log.error({ event: 'agent.handshake_failed', err: m }, m);
    const why = [...refused, ...(silent.length > 0 ? [`resolver ${silent.join(', ')} does not answer`] : [])].join('; ');
    process.stderr.write(`${SERVICE}: warning: ${why} (still trying)${waiting}\n`);
  }
  log.info(
    {
      event: 'agent.ready',
      socket: o.socket,
      ...(group ? { socketGroup: group.name } : {}),
      audit: audit.file,
      resolver: o.resolver.join(','),
      resolverReachable: reachable,
      tls: creds._isSecure() ? (o.tlsCert !== undefined ? 'mutual' : 'on') : 'off',
      ...(unreachable.length > 0 ? { unreachable } : {}),
      mounts: mounted,
      ...(started.takenOver > 0 ? { takenOver: started.takenOver } : {}),
      ...(pending.length > 0 ? { pendingMounts: pending.length } : {}),
      config: loaded.file,
      version: build.version,
      ...(build.commit ? { commit: build.commit } : {}),
      node: build.node,
      ...telemetry,
    },
    reachable ? 'agent ready' : 'agent up, but no resolver answers: operations fail with EIO until one does',
  );
  setHealthCheck(() => started.healthState());
  for (const m of pending) log.warn({ event: 'agent.mount_pending', layer: m.layer, mountpoint: m.mountpoint }, 'mounting once a resolver answers');
  // Type=notify: ready once every --mount is in place (or has failed), so units ordered after the agent find their mounts.
  const ready = (): void => {
    const n = started.mountCount;
    notify(log, { READY: 1, MAINPID: process.pid, STATUS: `serving ${n} mount${n === 1 ? '' : 's'}` });
  };
  if (pending.length > 0) {
    notify(log, { STATUS: `waiting for a resolver to mount ${pending.length} --mount` });
    retrying = mountWhenAnswered(started, pending, probe, o.deadlineMs, retries.signal, log).then(() => {
      if (!retries.signal.aborted) ready();
    });
  } else {
    ready();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${SERVICE}: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
