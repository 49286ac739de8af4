import type { Line, NsProcess } from './ns-process';
import { ratio, type CacheCounts, type RedisStats } from './probes';
import type { ReaderSummary } from './reader';

/** What a fleet run was asked to do (FleetOptions without its callbacks). */
export interface FleetSettings {
  hosts: number;
  seconds: number;
  killAt: number;
  concurrency: number;
  dirs: number;
  files: number;
  resolverCacheMb: number;
  /** How long each host's final check (every file read and hashed again) may take. */
  verifySeconds: number;
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
  options: FleetSettings;
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
  /** The surviving resolver's warnings and cache events: when each came, in seconds from the workload's start. */
  resolverEvents: Record<string, number[]>;
  /** Violations of what a fleet promises; empty on success. */
  problems: string[];
  /** Not failures, but the run proved less than it should (e.g. the kill met only cached reads). */
  warnings: string[];
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** Services log pino levels by name (`"level":"warn"`); numbers are pino's default spelling. */
export function levelOf(l: Line): number {
  return typeof l.level === 'number' ? l.level : (LEVELS[String(l.level)] ?? 0);
}

export function agentEvents(p: NsProcess): AgentEvents {
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

/** Adds to `r.problems`/`r.warnings` what the run shows against the fleet's promises. */
export function judge(r: FleetResult, stillMounted: (mountpoint: string) => boolean): void {
  let coldAfter = 0;
  for (const h of r.hosts) {
    const s = h.summary;
    if (h.readerExit !== 0) r.problems.push(`${h.role}: reader exited ${h.readerExit}`);
    if (s && s.failures > 0) r.problems.push(`${h.role}: ${s.failures} failed calls, first: ${JSON.stringify(s.firstFailures.slice(0, 5))}`);
    if (s && !s.marked) r.problems.push(`${h.role}: the reader never heard of the kill (SIGUSR2)`);
    if (s && s.readsAfterMark === 0) r.problems.push(`${h.role}: no read finished after the kill`);
    if (h.treeDifferences.length > 0) r.problems.push(`${h.role}: tree differs from the kernel's overlay: ${h.treeDifferences.slice(0, 10).join('; ')}`);
    const eio = h.agent.failedOps.EIO ?? 0;
    if (eio > 0) r.problems.push(`${h.role}: the agent failed ${eio} operations with EIO`);
    if (h.agent.exit !== '0') r.problems.push(`${h.role}: agent exit ${h.agent.exit ?? 'unknown'} at SIGTERM (0 expected)`);
    if (stillMounted(h.mountpoint)) r.problems.push(`${h.role}: ${h.mountpoint} still mounted after the agent stopped`);
    if (s && s.unverified > 0) r.problems.push(`${h.role}: ${s.unverified} files not read back within the final check's ${r.options.verifySeconds} s`);
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
  // Every read, then the first read of each file (the ones that reach the resolvers), before and after the kill.
  const columns: [string, (h: HostResult) => string][] = [
    ['host', (h) => h.role],
    ['layer', (h) => h.layer],
    ['reads', (h) => String(h.summary?.reads ?? '-')],
    ['reads/s', (h) => f(h.readsPerSec, 0)],
    ['p50 ms', (h) => f(h.summary?.all.p50Ms, 3)],
    ['p99 ms', (h) => f(h.summary?.all.p99Ms, 2)],
    ['max ms', (h) => f(h.summary?.all.maxMs, 1)],
    ['| first', (h) => `| ${h.summary?.cold.count ?? '-'}`],
    ['/s before', (h) => f(h.summary?.coldPerSecBefore, 0)],
    ['/s after', (h) => f(h.summary?.coldPerSecAfter, 0)],
    ['p99 before', (h) => f(h.summary?.coldBeforeMark.p99Ms, 1)],
    ['p99 after', (h) => f(h.summary?.coldAfterMark.p99Ms, 1)],
    ['| failed', (h) => `| ${h.summary?.failures ?? '-'}`],
    ['tree', (h) => (h.treeDifferences.length === 0 ? '= kernel' : `${h.treeDifferences.length} differences`)],
  ];
  const rows = [columns.map(([title]) => title), ...r.hosts.map((h) => columns.map(([, value]) => value(h)))];
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) out.push(row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
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
  out.push(
    `surviving resolver's events (s from the workload's start; the kill at ${(r.killed.afterMs / 1000).toFixed(1)}): ${
      Object.entries(r.resolverEvents)
        .map(([e, at]) => `${e} at ${at.join(', ')}`)
        .join('; ') || 'none'
    }`,
  );
  out.push(
    `final check per host (s, p99 ms of its reads): ${r.hosts.map((h) => `${h.role} ${f((h.summary?.verifyMs ?? NaN) / 1000, 1)} s ${f(h.summary?.verifyReads.p99Ms, 1)}`).join(', ')}`,
  );
  for (const w of r.warnings) out.push(`warning: ${w}`);
  out.push(r.problems.length === 0 ? 'OK: every host equals the kernel overlay, no failed read' : `FAILED:\n  ${r.problems.join('\n  ')}`);
  return out.join('\n');
}

