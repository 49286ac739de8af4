import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canMountFuse, canMountOverlay, mountOverlay } from '@strata/harness';
import { readKernelTree } from '../support/tree-snapshot';
import { fleetStack, writeFleetStore, type FleetStore } from './fleet-fixture';
import { FleetNetwork, netnsUnsupported, type Member, type MemberNetns } from './netns';
import { NsProcess, strataIn } from './ns-process';
import { NO_COUNTS, Probe, addCounts, redisCliIn, type CacheCounts, type RedisStats, type ResolverSample } from './probes';
import type { ReaderSummary } from './reader';
import { agentEvents, judge, levelOf, type FleetResult, type FleetSettings, type HostResult } from './report';
import { claimRunDir, clearStaleRuns, mountsUnder, newRunId, removeRunDir } from './run-state';
import { compareDumps, fileStats, readDump, treeLines, type TreeLines } from './tree-dump';

export interface FleetOptions extends FleetSettings {
  /** Copy the run's logs into this folder before the run folder goes. */
  keepLogs?: string;
  say: (line: string) => void;
}

/**
 * `killAt`: one resolver and one Redis node are SIGKILLed when the first
 * host has read this fraction of its files once, or at this fraction of
 * `seconds`. `resolverCacheMb` is small so that lookups reach Redis, as in
 * a fleet whose images outgrow the resolvers' memory. `verifySeconds`
 * bounds each host's final check.
 */
export const FLEET_DEFAULTS: FleetSettings = { hosts: 4, seconds: 20, killAt: 0.5, concurrency: 4, dirs: 600, files: 4, resolverCacheMb: 1, verifySeconds: 120 };
export const MAX_HOSTS = 64;

const RESOLVER_PORT = 7400;
const METRICS_PORT = 9464;
const REDIS_PORT = 6379;
/** Short, so the cluster declares the killed master failed within the run (the harness uses the same). */
const CLUSTER_NODE_TIMEOUT_MS = 2000;
const START_TIMEOUT_MS = 30_000;
const PREFETCH_TIMEOUT_MS = 60_000;
/** A reader still running this long after its final check's deadline is stuck (a FUSE request never answered): it is killed. */
const READER_GRACE_MS = 20_000;
/** The Redis node that dies. */
const REDIS_VICTIM = 1;

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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

function bounded<T>(work: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([work, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))]).finally(() => clearTimeout(timer));
}

interface Host extends MemberNetns {
  home: string;
  mountpoint: string;
  /** The layer it mounts. */
  layer: string;
}

/** What setUp() built, for the workload and the report. */
interface Running {
  t0: number;
  setupMs: number;
  top: TreeLines;
  expected: Map<string, TreeLines>;
  redisNodes: string[];
  resolverAddresses: string[];
  resolvers: NsProcess[];
  hosts: Host[];
  prefetchMs: number[];
}

/** What the workload saw around the kill. */
interface Workload {
  begin: number;
  readers: NsProcess[];
  timedOut: boolean;
  victim: number;
  killedAfter: number;
  before: (ResolverSample | undefined)[];
  after: ResolverSample | undefined;
  redisBefore: (RedisStats | undefined)[];
  redisAfter: (RedisStats | undefined)[];
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
  private probe?: Probe;

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
    return [...this.agents, ...this.others, ...(this.probe ? [this.probe] : [])].map((p) => p.child.pid).filter((p): p is number => p !== undefined);
  }

  async run(): Promise<FleetResult> {
    const s = await this.setUp();
    const w = await this.workload(s);
    return this.collect(s, w);
  }

  private members(): Member[] {
    return [
      { role: 'res0', octet: 2 },
      { role: 'res1', octet: 3 },
      { role: 'probe', octet: 5 },
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

  /** The store and its kernel references, the network, Redis, the resolvers, the agents with their mounts. */
  private async setUp(): Promise<Running> {
    const o = this.o;
    const t0 = Date.now();
    o.say(`run ${this.runId} in ${this.dir}`);
    const specs = fleetStack(o.dirs, o.files);
    const store = await writeFleetStore(path.join(this.dir, 'store'), specs);
    // Hosts mount the top layer, the snapshot below it and the base in turn: three chains share the caches, as a fleet's images do.
    const chains = store.layerNames.slice().reverse().slice(0, o.hosts);
    const expected = await this.references(store, chains);
    const top = expected.get(chains[0])!;
    const { files, bytes } = fileStats(top);
    o.say(`store: ${specs.length} layers, ${top.size} entries (${files} files, ${(bytes / 2 ** 20).toFixed(1)} MiB) in the top one, written in ${Date.now() - t0} ms`);

    this.check();
    this.net.create(this.members());
    this.probe = new Probe(this.net.member('probe').ns);
    const redisNodes = await this.startRedis();
    const redisUrl = `redis+cluster://${redisNodes.map((n) => `${n}:${REDIS_PORT}`).join(',')}`;
    const resolverAddresses = ['res0', 'res1'].map((r) => this.net.member(r).address);
    const resolvers = await Promise.all(
      ['res0', 'res1'].map(async (role) => {
        const m = this.net.member(role);
        const args = ['--store', store.store, '--listen', `${m.address}:${RESOLVER_PORT}`, '--redis', redisUrl, '--metrics-port', String(METRICS_PORT), '--cache-mb', String(o.resolverCacheMb)];
        // The fleet's network exists only inside its own namespaces: nothing outside can reach these ports.
        args.push('--plaintext');
        const p = this.spawn(() => strataIn(`resolver ${role}`, m.ns, 'resolver', args, path.join(this.logs, `${role}.log`)));
        await p.waitForEvent('resolver.listening', START_TIMEOUT_MS);
        return p;
      }),
    );
    const hosts = Array.from({ length: o.hosts }, (_, i): Host => {
      const m = this.net.member(`host${i}`);
      const home = path.join(this.dir, m.role);
      fs.mkdirSync(path.join(home, 'mnt'), { recursive: true });
      return { ...m, home, mountpoint: path.join(home, 'mnt'), layer: chains[i % chains.length] };
    });
    await Promise.all(
      hosts.map(async (h) => {
        const args = ['--resolver', resolverAddresses.map((a) => `${a}:${RESOLVER_PORT}`).join(','), '--socket', path.join(h.home, 'agent.sock'), '--mount', `${h.layer}:${h.mountpoint}`];
        // A fleet run ends with its agents: their mounts go with them (no fd holder left to keep them for a successor).
        args.push('--no-takeover');
        const p = this.spawn(() => strataIn(`agent ${h.role}`, h.ns, 'agent', args, path.join(this.logs, `agent-${h.role}.log`)), true);
        await p.waitForEvent('agent.mounted', START_TIMEOUT_MS);
      }),
    );
    // The workload starts on warm metadata, as a host's does a while after its mount: the faults then meet data reads.
    const prefetchMs = await Promise.all(this.agents.map(async (a) => Number((await a.waitForEvent('agent.prefetch.done', PREFETCH_TIMEOUT_MS)).ms)));
    const setupMs = Date.now() - t0;
    o.say(`metadata prefetched by every agent in ${Math.min(...prefetchMs)}-${Math.max(...prefetchMs)} ms`);
    o.say(`fleet up in ${setupMs} ms: resolvers ${resolverAddresses.join(', ')}, redis ${redisNodes.join(', ')}, ${o.hosts} hosts mounting ${chains.join(', ')}`);
    return { t0, setupMs, top, expected, redisNodes, resolverAddresses, resolvers, hosts, prefetchMs };
  }

  /** Each chain's tree as the kernel's overlay of the same folders shows it. */
  private async references(store: FleetStore, chains: string[]): Promise<Map<string, TreeLines>> {
    const expected = new Map<string, TreeLines>();
    for (const [i, layer] of chains.entries()) {
      const lower = store.lowerTopFirst.slice(i);
      // overlayfs wants two lower layers at least; a base alone is its own folder.
      let reference = path.join(store.layersDir, lower[0]);
      if (lower.length > 1) {
        reference = path.join(this.dir, `kernel-${layer}`);
        this.check();
        this.unmountKernel.push(await mountOverlay(store.layersDir, lower, reference));
      }
      expected.set(layer, treeLines(readKernelTree(reference)));
    }
    return expected;
  }

  /**
   * One reader per host until a fixed deadline. The kill comes when the
   * first host has read `killAt` of its files once (or at `killAt` of the
   * time), so every host still has files it never read: they must come
   * from the surviving resolver, through a Redis Cluster missing a master.
   */
  private async workload(s: Running): Promise<Workload> {
    const o = this.o;
    const probe = this.probe!;
    const begin = Date.now();
    const latest = begin + Math.round(o.killAt * o.seconds * 1000);
    const until = begin + o.seconds * 1000;
    let trigger: () => void = () => undefined;
    const triggered = new Promise<void>((r) => (trigger = r));
    const onProgress = (line: string): void => {
      const p = /^\{"cold":(\d+),"of":(\d+)\}$/.exec(line);
      if (p && Number(p[2]) > 0 && Number(p[1]) / Number(p[2]) >= o.killAt) trigger();
    };
    const readers = s.hosts.map((h, i) => {
      const args = ['--mount', h.mountpoint, '--until', String(until), '--verify-by', String(until + o.verifySeconds * 1000)];
      args.push('--concurrency', String(o.concurrency), '--seed', String(i + 1), '--tree', path.join(h.home, 'tree.jsonl'));
      const argv = [process.execPath, path.join(__dirname, 'reader.js'), ...args];
      return this.spawn(() => new NsProcess({ name: `reader ${h.role}`, netns: h.ns, argv, logFile: path.join(this.logs, `reader-${h.role}.log`), captureStdout: true, onStdoutLine: onProgress }));
    });
    o.say(`workload: ${o.seconds} s, ${o.concurrency} reads in flight per host; a resolver and Redis node redis${REDIS_VICTIM} die when a host has read ${o.killAt * 100}% of its files (at ${((latest - begin) / 1000).toFixed(1)} s at the latest)`);
    await Promise.race([triggered, sleep(latest - Date.now())]);
    const [before, redisBefore] = await Promise.all([Promise.all(['res0', 'res1'].map((r) => this.scrape(r))), Promise.all(s.redisNodes.map((a) => probe.redis(a, REDIS_PORT)))]);
    // The resolver holding the most Session streams dies: the agents must move them.
    const victim = (before[1]?.sessions ?? 0) > (before[0]?.sessions ?? 0) ? 1 : 0;
    s.resolvers[victim].kill('SIGKILL');
    this.others.find((p) => p.o.name === `redis redis${REDIS_VICTIM}`)?.kill('SIGKILL');
    for (const r of readers) r.kill('SIGUSR2');
    const killedAfter = Date.now() - begin;
    const streams = (before[0]?.sessions ?? 0) + (before[1]?.sessions ?? 0);
    o.say(`killed res${victim} (${before[victim]?.sessions ?? '?'} of ${streams} Session streams) and redis${REDIS_VICTIM} at ${(killedAfter / 1000).toFixed(1)} s`);

    const exits = await bounded(Promise.all(readers.map((r) => r.exit)), until - Date.now() + o.verifySeconds * 1000 + READER_GRACE_MS);
    if (exits === 'timeout') for (const r of readers) r.kill('SIGKILL');
    const [after, redisAfter] = await Promise.all([
      this.scrape(`res${1 - victim}`),
      Promise.all(s.redisNodes.map((a, i) => (i === REDIS_VICTIM ? undefined : probe.redis(a, REDIS_PORT)))),
    ]);
    return { begin, readers, timedOut: exits === 'timeout', victim, killedAfter, before, after, redisBefore, redisAfter };
  }

  /** Every host's reads and tree against the kernel, the cache figures, the agents' shutdown. */
  private async collect(s: Running, w: Workload): Promise<FleetResult> {
    const o = this.o;
    const problems: string[] = [];
    if (w.timedOut) problems.push(`readers still running ${READER_GRACE_MS} ms after the final check's deadline (killed)`);
    const hosts: HostResult[] = [];
    for (const [i, h] of s.hosts.entries()) {
      const exit = await w.readers[i].exit;
      let summary: ReaderSummary | undefined;
      try {
        summary = JSON.parse(w.readers[i].stdout.trim().split('\n').pop() ?? '') as ReaderSummary;
      } catch {
        problems.push(`${h.role}: reader printed no summary (exit ${exit.code ?? exit.signal}); log ${path.join(this.logs, `reader-${h.role}.log`)}`);
      }
      const dump = path.join(h.home, 'tree.jsonl');
      const secs = summary ? summary.elapsedMs / 1000 : 0;
      hosts.push({
        role: h.role,
        layer: h.layer,
        address: h.address,
        mountpoint: h.mountpoint,
        readerExit: exit.code,
        summary,
        readsPerSec: summary && secs > 0 ? summary.reads / secs : null,
        treeDifferences: fs.existsSync(dump) ? compareDumps(s.expected.get(h.layer)!, readDump(dump)) : ['no tree written'],
        agent: agentEvents(this.agents[i]),
      });
    }

    const other = 1 - w.victim;
    const counts = (x: ResolverSample | undefined): CacheCounts => x?.cache ?? NO_COUNTS;
    if (!w.before[0] || !w.before[1] || !w.after) problems.push('a resolver did not answer /metrics');
    const redisSeen = w.redisBefore.map((b, i) => w.redisAfter[i] ?? b);
    const redis = redisSeen.reduce<RedisStats>((t, n) => ({ hits: t.hits + (n?.hits ?? 0), misses: t.misses + (n?.misses ?? 0) }), { hits: 0, misses: 0 });
    const survivor = s.resolvers[other];
    // Warnings and cache events of the survivor, each with when it came (seconds from the workload's start; negative: before it).
    const resolverEvents: Record<string, number[]> = {};
    for (const l of survivor.lines) {
      if (!l.event || !(levelOf(l) >= 40 || l.event.startsWith('cache.'))) continue;
      (resolverEvents[l.event] ??= []).push(Math.round((Date.parse(String(l.time)) - w.begin) / 100) / 10);
    }
    if (!survivor.running()) problems.push(`resolver res${other} died: ${survivor.tail(5)}`);

    // The agents stop as on a host shutdown: exit 0 and nothing left mounted.
    await Promise.all(
      this.agents.map(async (a, i) => {
        const alive = a.running();
        const e = await a.stop('SIGTERM', 10_000);
        hosts[i].agent.exit = alive ? String(e.signal ?? e.code) : `died before the end (${e.signal ?? e.code})`;
      }),
    );
    const { files, bytes } = fileStats(s.top);
    const result: FleetResult = {
      runId: this.runId,
      date: new Date(s.t0).toISOString(),
      options: { hosts: o.hosts, seconds: o.seconds, killAt: o.killAt, concurrency: o.concurrency, dirs: o.dirs, files: o.files, resolverCacheMb: o.resolverCacheMb, verifySeconds: o.verifySeconds },
      setupMs: s.setupMs,
      entries: s.top.size,
      files,
      bytes,
      hosts,
      killed: {
        resolver: `res${w.victim} ${s.resolverAddresses[w.victim]}`,
        sessions: w.before.map((b) => b?.sessions ?? null),
        redis: `redis${REDIS_VICTIM} ${s.redisNodes[REDIS_VICTIM]}`,
        afterMs: w.killedAfter,
      },
      prefetchMs: s.prefetchMs,
      cache: {
        beforeKill: addCounts(counts(w.before[0]), counts(w.before[1])),
        afterKill: addCounts(counts(w.after), counts(w.before[other]), -1),
        total: addCounts(counts(w.before[w.victim]), counts(w.after)),
      },
      redis,
      resolverEvents,
      problems,
      warnings: [],
    };
    judge(result, (mp) => mountsUnder(mp).length > 0);
    return result;
  }

  private async scrape(role: string): Promise<ResolverSample | undefined> {
    return this.probe?.resolver(`http://${this.net.member(role).address}:${METRICS_PORT}/metrics`);
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
      argv.push('--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'), '--cluster-node-timeout', String(CLUSTER_NODE_TIMEOUT_MS));
      this.spawn(() => new NsProcess({ name: `redis ${n.role}`, netns: n.ns, argv, logFile: path.join(this.logs, `${n.role}.log`) }));
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
    await this.probe?.close();
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
