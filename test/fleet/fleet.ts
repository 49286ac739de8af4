import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canMountFuse, canMountOverlay, mountOverlay } from '@strata/harness';
import { readKernelTree } from '../support/tree-snapshot';
import { fleetStack, writeFleetStore } from './fleet-fixture';
import { FleetNetwork, netnsUnsupported, type Member } from './netns';
import { NsProcess, strataIn, type Line } from './ns-process';
import { NO_COUNTS, addCounts, ratio, redisCliIn, redisStats, scrapeResolver, type CacheCounts, type RedisStats, type ResolverSample } from './probes';
import type { ReaderSummary } from './reader';
import { compareDumps, fileStats, readDump, treeLines, type TreeLines } from './tree-dump';
import { claimRunDir, clearStaleRuns, mountsUnder, newRunId, removeRunDir } from './run-state';

export interface FleetOptions {
  hosts: number;
  /** Length of the workload. */
  seconds: number;
  /** When one resolver and one Redis node are SIGKILLed, as a fraction of `seconds`. */
  killAt: number;
  /** Reads in flight per host. */
  concurrency: number;
  /** Size of the image: directories and small files per directory in its base layer. */
  dirs: number;
  files: number;
  /** The resolvers' in-process cache (--cache-mb): small, so lookups reach Redis as in a fleet whose images outgrow the resolvers' memory. */
  resolverCacheMb: number;
  /** Copy the run's logs into this folder before the run folder goes. */
  keepLogs?: string;
  say: (line: string) => void;
}

export const FLEET_DEFAULTS: Omit<FleetOptions, 'say'> = { hosts: 4, seconds: 20, killAt: 0.4, concurrency: 4, dirs: 1200, files: 4, resolverCacheMb: 1 };
export const MAX_HOSTS = 64;

const RESOLVER_PORT = 7400;
const METRICS_PORT = 9464;
const REDIS_PORT = 6379;
/** Short, so the cluster declares the killed master failed within the run (the harness uses the same). */
const CLUSTER_NODE_TIMEOUT_MS = 2000;
const START_TIMEOUT_MS = 30_000;
/** After the workload each reader hashes the whole tree once more, for at most this long. */
const VERIFY_MS = 45_000;
/** Beyond that a reader is stuck (a FUSE request never answered): it is killed. */
const READER_TAIL_MS = VERIFY_MS + 20_000;
/** The counters are read this long before the kill (scrapes run node and redis-cli in the namespaces). */
const SAMPLE_LEAD_MS = 1_500;
const PREFETCH_TIMEOUT_MS = 60_000;

/** Why this machine cannot run a fleet, or undefined. */
export function fleetUnsupported(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, FUSE and overlay mounts)';
  if (!canMountFuse()) return 'needs /dev/fuse';
  if (!canMountOverlay()) return 'needs the kernel overlay filesystem (the reference every host is compared with)';
  const net = netnsUnsupported();
  if (net) return net;
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) return 'needs redis-server';
  const cli = spawnSync('redis-cli', ['--cluster', 'help'], { encoding: 'utf8' });
  if (cli.error || !`${cli.stdout}${cli.stderr}`.includes('create')) return 'needs redis-cli with --cluster (redis-tools 5 or later)';
  return undefined;
}

export interface HostResult {
  role: string;
  /** The layer it mounts (its chain: that layer and the ones below). */
  layer: string;
  address: string;
  mountpoint: string;
  readerExit: number | null;
  summary?: ReaderSummary;
  readsPerSec: number | null;
  coldReadsPerSec: number | null;
  treeDifferences: string[];
  agent: AgentEvents;
}

export interface AgentEvents {
  sessionBroken: number;
  resolverUnreachable: number;
  resolverDown: number;
  /** fuse.op.failed by errno name. */
  failedOps: Record<string, number>;
  warnings: string[];
  exit?: string;
}

export interface FleetResult {
  runId: string;
  date: string;
  options: Omit<FleetOptions, 'say'>;
  setupMs: number;
  entries: number;
  files: number;
  bytes: number;
  hosts: HostResult[];
  /** `sessions`: the Session streams each resolver held just before the kill. */
  killed: { resolver: string; sessions: (number | null)[]; redis: string; afterMs: number };
  /** How long each agent's metadata walk at mount took. */
  prefetchMs: number[];
  /** Cache lookups counted by the resolvers (Prometheus), before the kill, after it (the survivor) and over the run. */
  cache: { beforeKill: CacheCounts; afterKill: CacheCounts; total: CacheCounts };
  /** keyspace hits/misses over the three nodes (the killed one as last seen). */
  redis: RedisStats;
  resolverEvents: Record<string, number>;
  /** Violations of what a fleet promises; empty on success. */
  problems: string[];
  /** Not failures, but the run proved less than it should (e.g. the kill met only cached reads). */
  warnings: string[];
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** Services log pino levels by name (`"level":"warn"`); numbers are pino's default spelling. */
function levelOf(l: Line): number {
  return typeof l.level === 'number' ? l.level : (LEVELS[String(l.level)] ?? 0);
}

function agentEvents(p: NsProcess): AgentEvents {
  const failedOps: Record<string, number> = {};
  for (const l of p.events('fuse.op.failed')) failedOps[String(l.errno)] = (failedOps[String(l.errno)] ?? 0) + 1;
  return {
    sessionBroken: p.events('agent.session.broken').length,
    resolverUnreachable: p.events('agent.resolver.unreachable').length,
    resolverDown: p.events('agent.resolver.down').length,
    failedOps,
    warnings: p.lines.filter((l) => levelOf(l) >= 40).map((l) => String(l.event ?? l.msg)),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

function bounded<T>(work: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([work, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))]).finally(() => clearTimeout(timer));
}

/**
 * One fleet on this machine: 2 resolvers, a 3-node Redis Cluster and N
 * hosts, each in its own network namespace, all serving one image store.
 * `run()` builds it, runs the workload with the faults and checks every
 * host; `destroy()` (also after a failure, idempotent) removes everything.
 */
export class Fleet {
  readonly runId = newRunId();
  readonly dir: string;
  private readonly net: FleetNetwork;
  private readonly agents: NsProcess[] = [];
  private readonly others: NsProcess[] = [];
  private readonly unmountKernel: (() => Promise<void>)[] = [];
  private destroyed?: Promise<string[]>;

  constructor(private readonly o: FleetOptions) {
    if (!(o.hosts >= 1 && o.hosts <= MAX_HOSTS)) throw new Error(`hosts must be 1..${MAX_HOSTS}`);
    if (!(o.killAt > 0 && o.killAt < 1)) throw new Error('killAt must be between 0 and 1');
    this.dir = claimRunDir(this.runId);
    this.net = new FleetNetwork(this.runId);
    fs.mkdirSync(this.logs);
  }

  get logs(): string {
    return path.join(this.dir, 'logs');
  }

  /** Every pid the fleet started (for checking that none is left). */
  get pids(): number[] {
    return [...this.agents, ...this.others].map((p) => p.pid).filter((p): p is number => p !== undefined);
  }

  get namespaces(): string[] {
    return this.net.namespaces;
  }

  private members(): Member[] {
    return [
      { role: 'res0', octet: 2 },
      { role: 'res1', octet: 3 },
      ...[0, 1, 2].map((i) => ({ role: `redis${i}`, octet: 11 + i })),
      ...Array.from({ length: this.o.hosts }, (_, i) => ({ role: `host${i}`, octet: 21 + i })),
    ];
  }

  /** Nothing new is started once the fleet is being removed (a signal came in the middle of run()). */
  private check(): void {
    if (this.destroyed) throw new Error('the fleet is being removed');
  }

  private spawn(make: () => NsProcess, agent = false): NsProcess {
    this.check();
    const p = make();
    (agent ? this.agents : this.others).push(p);
    return p;
  }

  async run(): Promise<FleetResult> {
    const o = this.o;
    const t0 = Date.now();
    o.say(`run ${this.runId} in ${this.dir}`);
    const specs = fleetStack(o.dirs, o.files);
    const store = await writeFleetStore(path.join(this.dir, 'store'), specs);
    // Hosts mount the top layer or the snapshot below it, in turn: two chains share the caches, as two images of a fleet do.
    const chains = store.layerNames.slice(1).reverse().slice(0, Math.min(2, o.hosts));
    const expected = new Map<string, TreeLines>();
    for (const [i, layer] of chains.entries()) {
      const kernel = path.join(this.dir, `kernel-${layer}`);
      this.check();
      this.unmountKernel.push(await mountOverlay(store.layersDir, store.lowerTopFirst.slice(i), kernel));
      expected.set(layer, treeLines(readKernelTree(kernel)));
    }
    const top = expected.get(chains[0])!;
    const { files, bytes } = fileStats(top);
    o.say(`store: ${specs.length} layers, ${top.size} entries (${files} files, ${(bytes / 2 ** 20).toFixed(1)} MiB) in the top one, written in ${Date.now() - t0} ms`);

    this.check();
    this.net.create(this.members());
    const redisNodes = await this.startRedis();
    const redisUrl = `redis+cluster://${redisNodes.map((n) => `${n}:${REDIS_PORT}`).join(',')}`;
    const resolverAddresses = ['res0', 'res1'].map((r) => this.net.member(r).address);
    const resolvers = await Promise.all(
      ['res0', 'res1'].map(async (role) => {
        const m = this.net.member(role);
        const args = ['--store', store.store, '--listen', `${m.address}:${RESOLVER_PORT}`, '--redis', redisUrl, '--metrics-port', String(METRICS_PORT), '--cache-mb', String(o.resolverCacheMb)];
        const p = this.spawn(() => strataIn(`resolver ${role}`, m.ns, 'resolver', args, path.join(this.logs, `${role}.log`)));
        await p.waitForEvent('resolver.listening', START_TIMEOUT_MS);
        return p;
      }),
    );
    const hosts = Array.from({ length: o.hosts }, (_, i) => {
      const m = this.net.member(`host${i}`);
      const home = path.join(this.dir, m.role);
      fs.mkdirSync(path.join(home, 'mnt'), { recursive: true });
      return { ...m, home, mountpoint: path.join(home, 'mnt'), layer: chains[i % chains.length] };
    });
    await Promise.all(
      hosts.map(async (h) => {
        const args = ['--resolver', resolverAddresses.map((a) => `${a}:${RESOLVER_PORT}`).join(','), '--socket', path.join(h.home, 'agent.sock'), '--mount', `${h.layer}:${h.mountpoint}`];
        const p = this.spawn(() => strataIn(`agent ${h.role}`, h.ns, 'agent', args, path.join(this.logs, `agent-${h.role}.log`)), true);
        await p.waitForEvent('agent.mounted', START_TIMEOUT_MS);
      }),
    );
    // The workload starts on warm metadata, as a host's does a while after its mount: the faults then meet data reads.
    const prefetch = await Promise.all(this.agents.map(async (a) => Number((await a.waitForEvent('agent.prefetch.done', PREFETCH_TIMEOUT_MS)).ms)));
    const setupMs = Date.now() - t0;
    o.say(`metadata prefetched by every agent in ${Math.min(...prefetch)}-${Math.max(...prefetch)} ms`);
    o.say(`fleet up in ${setupMs} ms: resolvers ${resolverAddresses.join(', ')}, redis ${redisNodes.join(', ')}, ${o.hosts} hosts mounting ${chains.join(' or ')}`);

    // The workload: one reader per host, a fixed deadline, the kill at a fixed time.
    const begin = Date.now() + 200;
    const mark = begin + Math.round(o.killAt * o.seconds * 1000);
    const until = begin + o.seconds * 1000;
    const readerArgs = (h: (typeof hosts)[number], i: number): string[] => [
      path.join(__dirname, 'reader.js'),
      ...['--mount', h.mountpoint, '--until', String(until), '--mark', String(mark), '--verify-by', String(until + VERIFY_MS)],
      ...['--concurrency', String(o.concurrency), '--seed', String(i + 1), '--tree', path.join(h.home, 'tree.jsonl')],
    ];
    const readers = hosts.map((h, i) =>
      this.spawn(
        () =>
          new NsProcess({
            name: `reader ${h.role}`,
            netns: h.ns,
            argv: [process.execPath, ...readerArgs(h, i)],
            logFile: path.join(this.logs, `reader-${h.role}.log`),
            captureStdout: true,
          }),
      ),
    );
    o.say(`workload: ${o.seconds} s, ${o.concurrency} reads in flight per host; a resolver and Redis node redis1 SIGKILLed after ${((mark - begin) / 1000).toFixed(1)} s`);
    await sleep(mark - SAMPLE_LEAD_MS - Date.now());
    const redisNs = (i: number): string => this.net.member(`redis${i}`).ns;
    const [before, redisBefore] = await Promise.all([Promise.all(['res0', 'res1'].map((r) => this.scrape(r))), Promise.all(redisNodes.map((a, i) => redisStats(redisNs(i), a, REDIS_PORT)))]);
    // The resolver holding the most Session streams dies: the agents must move them.
    const victim = (before[1]?.sessions ?? 0) > (before[0]?.sessions ?? 0) ? 1 : 0;
    const other = 1 - victim;
    await sleep(mark - Date.now());
    resolvers[victim].kill('SIGKILL');
    this.others.find((p) => p.o.name === 'redis redis1')?.kill('SIGKILL');
    const killedAfter = Date.now() - begin;
    o.say(`killed res${victim} (${before[victim]?.sessions ?? '?'} of ${(before[0]?.sessions ?? 0) + (before[1]?.sessions ?? 0)} Session streams) and redis1 at ${(killedAfter / 1000).toFixed(1)} s`);

    const exits = await bounded(Promise.all(readers.map((r) => r.exit)), until - Date.now() + READER_TAIL_MS);
    if (exits === 'timeout') for (const r of readers) r.kill('SIGKILL');
    const [after, redisAfter] = await Promise.all([this.scrape(`res${other}`), Promise.all(redisNodes.map((a, i) => (i === 1 ? undefined : redisStats(redisNs(i), a, REDIS_PORT))))]);

    const problems: string[] = [];
    const warnings: string[] = [];
    if (exits === 'timeout') problems.push(`readers still running ${READER_TAIL_MS} ms after the deadline (killed)`);
    const hostResults: HostResult[] = [];
    for (const [i, h] of hosts.entries()) {
      const r = readers[i];
      const exit = await r.exit;
      let summary: ReaderSummary | undefined;
      try {
        summary = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as ReaderSummary;
      } catch {
        problems.push(`${h.role}: reader printed no summary (exit ${exit.code ?? exit.signal}); log ${path.join(this.logs, `reader-${h.role}.log`)}`);
      }
      const differences = fs.existsSync(path.join(h.home, 'tree.jsonl')) ? compareDumps(expected.get(h.layer)!, readDump(path.join(h.home, 'tree.jsonl'))) : ['no tree written'];
      const secs = summary ? summary.elapsedMs / 1000 : 0;
      const coldSecs = summary?.firstPassMs ? summary.firstPassMs / 1000 : secs;
      hostResults.push({
        role: h.role,
        layer: h.layer,
        address: h.address,
        mountpoint: h.mountpoint,
        readerExit: exit.code,
        summary,
        readsPerSec: summary && secs > 0 ? summary.reads / secs : null,
        coldReadsPerSec: summary && coldSecs > 0 ? summary.cold.count / coldSecs : null,
        treeDifferences: differences,
        agent: agentEvents(this.agents[i]),
      });
    }

    const counts = (x: ResolverSample | undefined): CacheCounts => x?.cache ?? NO_COUNTS;
    const beforeKill = addCounts(counts(before[0]), counts(before[1]));
    const afterKill = addCounts(counts(after), counts(before[other]), -1);
    const total = addCounts(counts(before[victim]), counts(after));
    if (!before[0] || !before[1] || !after) problems.push('a resolver did not answer /metrics');
    const redisSeen = [redisAfter[0] ?? redisBefore[0], redisBefore[1], redisAfter[2] ?? redisBefore[2]];
    const redis = redisSeen.reduce<RedisStats>((s, n) => ({ hits: s.hits + (n?.hits ?? 0), misses: s.misses + (n?.misses ?? 0) }), { hits: 0, misses: 0 });
    const survivor = resolvers[other];
    const resolverEvents: Record<string, number> = {};
    for (const l of survivor.lines) if (l.event && (levelOf(l) >= 40 || l.event.startsWith('cache.'))) resolverEvents[l.event] = (resolverEvents[l.event] ?? 0) + 1;
    if (!survivor.running()) problems.push(`resolver res${other} died: ${survivor.tail(5)}`);

    // The agents stop as on a host shutdown: exit 0 and nothing left mounted.
    await Promise.all(
      this.agents.map(async (a, i) => {
        const alive = a.running();
        const s = await a.stop('SIGTERM', 10_000);
        hostResults[i].agent.exit = alive ? String(s.signal ?? s.code) : `died before the end (${s.signal ?? s.code})`;
      }),
    );
    const result: FleetResult = {
      runId: this.runId,
      date: new Date(t0).toISOString(),
      options: { hosts: o.hosts, seconds: o.seconds, killAt: o.killAt, concurrency: o.concurrency, dirs: o.dirs, files: o.files, resolverCacheMb: o.resolverCacheMb },
      setupMs,
      entries: top.size,
      files,
      bytes,
      hosts: hostResults,
      killed: { resolver: `res${victim} ${resolverAddresses[victim]}`, sessions: [before[0]?.sessions ?? null, before[1]?.sessions ?? null], redis: `redis1 ${redisNodes[1]}`, afterMs: killedAfter },
      prefetchMs: prefetch,
      cache: { beforeKill, afterKill, total },
      redis,
      resolverEvents,
      problems,
      warnings,
    };
    judge(result, (mp) => mountsUnder(mp).length > 0);
    return result;
  }

  private async scrape(role: string): Promise<ResolverSample | undefined> {
    const m = this.net.member(role);
    return scrapeResolver(m.ns, `http://${m.address}:${METRICS_PORT}/metrics`);
  }

  /** Three cluster-enabled masters, no replicas, joined by redis-cli --cluster create. */
  private async startRedis(): Promise<string[]> {
    const nodes = [0, 1, 2].map((i) => this.net.member(`redis${i}`));
    for (const n of nodes) {
      const dir = path.join(this.dir, n.role);
      fs.mkdirSync(dir);
      // As deploy/k8s/redis.conf has it: a cache (no persistence, LRU eviction), reachable only inside the fleet.
      const argv = ['redis-server', '--bind', n.address, '--port', String(REDIS_PORT), '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', dir];
      argv.push('--maxmemory', '128mb', '--maxmemory-policy', 'allkeys-lru');
      const cluster = ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'), '--cluster-node-timeout', String(CLUSTER_NODE_TIMEOUT_MS)];
      this.spawn(() => new NsProcess({ name: `redis ${n.role}`, netns: n.ns, argv: [...argv, ...cluster], logFile: path.join(this.logs, `${n.role}.log`) }));
    }
    for (const n of nodes) {
      const end = Date.now() + START_TIMEOUT_MS;
      while ((await redisCliIn(n.ns, n.address, REDIS_PORT, 'ping')).stdout.trim() !== 'PONG') {
        if (Date.now() > end) throw new Error(`redis ${n.role} did not answer; see ${this.logs}/${n.role}.log`);
        await sleep(50);
      }
    }
    const create = await redisCliIn(nodes[0].ns, nodes[0].address, REDIS_PORT, '--cluster', 'create', ...nodes.map((n) => `${n.address}:${REDIS_PORT}`), '--cluster-replicas', '0', '--cluster-yes');
    if (create.code !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    const end = Date.now() + START_TIMEOUT_MS;
    for (const n of nodes) {
      while (!(await redisCliIn(n.ns, n.address, REDIS_PORT, 'cluster', 'info')).stdout.includes('cluster_state:ok')) {
        if (Date.now() > end) throw new Error(`redis cluster not ok on ${n.role}`);
        await sleep(100);
      }
    }
    return nodes.map((n) => n.address);
  }

  /** Stops and removes everything the fleet made; returns what could not be removed. Safe to call again. */
  destroy(): Promise<string[]> {
    this.destroyed ??= this.teardown();
    return this.destroyed;
  }

  private async teardown(): Promise<string[]> {
    const problems: string[] = [];
    // Agents first, with SIGTERM: they unmount. Everything else has nothing to save.
    await Promise.all(this.agents.map((a) => a.stop('SIGTERM', 10_000)));
    await Promise.all(this.others.map((p) => p.stop('SIGKILL')));
    problems.push(...this.net.destroy());
    for (const u of this.unmountKernel.splice(0)) await u().catch((err: unknown) => problems.push(`kernel overlay: ${String(err)}`));
    if (this.o.keepLogs) {
      fs.mkdirSync(this.o.keepLogs, { recursive: true });
      fs.cpSync(this.logs, this.o.keepLogs, { recursive: true });
    }
    problems.push(...removeRunDir(this.dir));
    return problems;
  }
}

/** Adds to `r.problems`/`r.warnings` what the run shows against the fleet's promises. */
export function judge(r: FleetResult, stillMounted: (mountpoint: string) => boolean): void {
  let coldAfter = 0;
  for (const h of r.hosts) {
    const s = h.summary;
    if (h.readerExit !== 0) r.problems.push(`${h.role}: reader exited ${h.readerExit}`);
    if (s && s.failures > 0) r.problems.push(`${h.role}: ${s.failures} failed calls, first: ${JSON.stringify(s.firstFailures.slice(0, 5))}`);
    if (s && s.readsAfterMark === 0) r.problems.push(`${h.role}: no read finished after the kill`);
    if (h.treeDifferences.length > 0) r.problems.push(`${h.role}: tree differs from the kernel's overlay: ${h.treeDifferences.slice(0, 10).join('; ')}`);
    const eio = h.agent.failedOps.EIO ?? 0;
    if (eio > 0) r.problems.push(`${h.role}: the agent failed ${eio} operations with EIO`);
    if (h.agent.exit !== '0') r.problems.push(`${h.role}: agent exit ${h.agent.exit ?? 'unknown'} at SIGTERM (0 expected)`);
    if (stillMounted(h.mountpoint)) r.problems.push(`${h.role}: ${h.mountpoint} still mounted after the agent stopped`);
    if (s && s.unverified > 0) r.problems.push(`${h.role}: ${s.unverified} files not read back within the final check's ${VERIFY_MS / 1000} s`);
    coldAfter += s?.coldAfterMark.count ?? 0;
  }
  if (r.hosts.every((h) => h.summary) && coldAfter === 0) r.warnings.push('every host had read every file before the kill: the faults met only cached reads (more --dirs or an earlier --kill-at)');
  if (r.hosts.every((h) => h.agent.sessionBroken === 0)) r.warnings.push('no agent logged agent.session.broken: the killed resolver carried no stream?');
}

export function pct(v: number | null): string {
  return v === null ? '-' : `${(v * 100).toFixed(1)}%`;
}

/** The report an operator reads: per host, the cache, the faults, the verdict. */
export function formatResult(r: FleetResult): string {
  const f = (v: number | null | undefined, d = 2): string => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));
  const out: string[] = [];
  out.push(
    `fleet ${r.runId} ${r.date}: ${r.options.hosts} hosts, ${r.options.seconds} s, top layer ${r.entries} entries (${r.files} files, ${(r.bytes / 2 ** 20).toFixed(1)} MiB), resolvers --cache-mb ${r.options.resolverCacheMb}; setup ${(r.setupMs / 1000).toFixed(1)} s`,
  );
  out.push(`agents' metadata walk at mount: ${Math.min(...r.prefetchMs)}-${Math.max(...r.prefetchMs)} ms`);
  out.push(`killed ${r.killed.resolver} and ${r.killed.redis} (SIGKILL) at ${(r.killed.afterMs / 1000).toFixed(1)} s; Session streams before: res0 ${r.killed.sessions[0] ?? '?'}, res1 ${r.killed.sessions[1] ?? '?'}`);
  out.push('host   layer   reads   reads/s  p50 ms  p99 ms  max ms | cold  cold/s  p99 before  p99 after kill | passes  failures  tree');
  for (const h of r.hosts) {
    const s = h.summary;
    out.push(
      [
        h.role.padEnd(6),
        h.layer.padEnd(7),
        String(s?.reads ?? '-').padStart(6),
        f(h.readsPerSec, 0).padStart(9),
        f(s?.all.p50Ms, 3).padStart(7),
        f(s?.all.p99Ms, 3).padStart(7),
        f(s?.all.maxMs, 1).padStart(7),
        '|',
        String(s?.cold.count ?? '-').padStart(5),
        f(h.coldReadsPerSec, 0).padStart(7),
        f(s?.coldBeforeMark.p99Ms, 2).padStart(11),
        f(s?.coldAfterMark.p99Ms, 2).padStart(15),
        '|',
        String(s?.passes ?? '-').padStart(6),
        String(s?.failures ?? '-').padStart(9),
        h.treeDifferences.length === 0 ? '  = kernel' : `  ${h.treeDifferences.length} differences`,
      ].join(' '),
    );
  }
  const c = r.cache;
  const tiers = (x: CacheCounts): string =>
    `${x.memoryHit + x.memoryMiss} lookups: in-process ${pct(ratio(x.memoryHit, x.memoryMiss))} hits, redis ${pct(ratio(x.redisHit, x.redisMiss))} of ${x.redisHit + x.redisMiss}`;
  out.push(`resolver cache before the kill: ${tiers(c.beforeKill)}`);
  out.push(`resolver cache after the kill (survivor): ${tiers(c.afterKill)}`);
  out.push(`resolver cache over the run: ${tiers(c.total)}`);
  out.push(`redis INFO keyspace: ${r.redis.hits} hits, ${r.redis.misses} misses (${pct(ratio(r.redis.hits, r.redis.misses))})`);
  const ev = (h: HostResult): string =>
    `${h.role}: session.broken ${h.agent.sessionBroken}, resolver.unreachable ${h.agent.resolverUnreachable}, resolver.down ${h.agent.resolverDown}, failed ops ${JSON.stringify(h.agent.failedOps)}, exit ${h.agent.exit}`;
  out.push(`agents: ${r.hosts.map(ev).join('; ')}`);
  out.push(`surviving resolver: ${JSON.stringify(r.resolverEvents)}`);
  out.push(
    `final check per host (s, p99 ms of its reads): ${r.hosts.map((h) => `${h.role} ${f((h.summary?.verifyMs ?? NaN) / 1000, 1)} s ${f(h.summary?.verifyReads.p99Ms, 1)}`).join(', ')}`,
  );
  for (const w of r.warnings) out.push(`warning: ${w}`);
  out.push(r.problems.length === 0 ? 'OK: every host equals the kernel overlay, no failed read' : `FAILED:\n  ${r.problems.join('\n  ')}`);
  return out.join('\n');
}

/**
 * Builds, runs and removes a fleet, clearing stale runs first. SIGINT and
 * SIGTERM while it runs remove the fleet, then exit (130/143).
 */
export async function runFleet(o: FleetOptions): Promise<{ result: FleetResult; fleet: Fleet }> {
  const stale = clearStaleRuns();
  if (stale.runs.length > 0) o.say(`cleared stale runs ${stale.runs.join(', ')}${stale.problems.length ? `: ${stale.problems.join('; ')}` : ''}`);
  const fleet = new Fleet(o);
  const onSignal = (signal: NodeJS.Signals): void => {
    o.say(`${signal}: removing the fleet`);
    void fleet.destroy().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await fleet.run();
    const left = await fleet.destroy();
    result.problems.push(...left.map((p) => `cleanup: ${p}`));
    return { result, fleet };
  } catch (err) {
    const left = await fleet.destroy();
    if (left.length > 0) o.say(`cleanup: ${left.join('; ')}`);
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
