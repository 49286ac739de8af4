import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { inNetns } from './netns';
import type { ProbeAnswer, ProbeRequest } from './probe';

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `argv` in network namespace `ns` to completion (bounded by `timeoutMs`); never throws. */
export function execIn(ns: string, argv: string[], timeoutMs = 5_000): Promise<Ran> {
  const [cmd, ...args] = inNetns(ns, argv);
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Cache lookups a resolver counted, from `strata_cache_requests_total{tier,result}`. */
export interface CacheCounts {
  memoryHit: number;
  memoryMiss: number;
  redisHit: number;
  redisMiss: number;
}

export const NO_COUNTS: CacheCounts = { memoryHit: 0, memoryMiss: 0, redisHit: 0, redisMiss: 0 };

export function addCounts(a: CacheCounts, b: CacheCounts, sign = 1): CacheCounts {
  return {
    memoryHit: a.memoryHit + sign * b.memoryHit,
    memoryMiss: a.memoryMiss + sign * b.memoryMiss,
    redisHit: a.redisHit + sign * b.redisHit,
    redisMiss: a.redisMiss + sign * b.redisMiss,
  };
}

/** hits / (hits + misses), null when nothing was asked. */
export function ratio(hit: number, miss: number): number | null {
  return hit + miss === 0 ? null : hit / (hit + miss);
}

/** The counters of one Prometheus text page (the OpenTelemetry exporter's names: dots become underscores, counters end in _total). */
export function parseCacheCounts(text: string): CacheCounts {
  const c = { ...NO_COUNTS };
  for (const line of text.split('\n')) {
    const m = /^strata_cache_requests_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const v = Number(m[2]);
    if (!Number.isFinite(v)) continue;
    const key = `${labels.tier}/${labels.result}`;
    if (key === 'in-process/hit') c.memoryHit += v;
    else if (key === 'in-process/miss') c.memoryMiss += v;
    else if (key === 'redis/hit') c.redisHit += v;
    else if (key === 'redis/miss') c.redisMiss += v;
  }
  return c;
}

/** The value of a metric (a gauge such as strata_resolver_sessions), 0 when absent. */
export function parseGauge(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm').exec(text);
  const v = Number(m?.[1] ?? 0);
  return Number.isFinite(v) ? v : 0;
}

export interface ResolverSample {
  cache: CacheCounts;
  /** Open Session streams (connected agents' streams). */
  sessions: number;
}

export interface RedisStats {
  hits: number;
  misses: number;
}

export function parseRedisStats(info: string): RedisStats | undefined {
  const field = (name: string): number => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
  const s = { hits: field('keyspace_hits'), misses: field('keyspace_misses') };
  return Number.isFinite(s.hits) && Number.isFinite(s.misses) ? s : undefined;
}

/** Answers wait at most this long (the probe bounds each request by 2 s itself). */
const ANSWER_TIMEOUT_MS = 5_000;

/**
 * The client of probe.js, running in a namespace of the fleet: a scrape
 * costs a line on a pipe, not a process, so it can be taken right before
 * a kill.
 */
export class Probe {
  readonly child: ChildProcess;
  private nextId = 1;
  private readonly waiting = new Map<number, (a: ProbeAnswer | undefined) => void>();

  constructor(ns: string) {
    const [cmd, ...args] = inNetns(ns, [process.execPath, path.join(__dirname, 'probe.js')]);
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
    this.child.stdin!.on('error', () => undefined);
    readline.createInterface({ input: this.child.stdout!, crlfDelay: Infinity }).on('line', (line) => {
      let a: ProbeAnswer;
      try {
        a = JSON.parse(line) as ProbeAnswer;
      } catch {
        return;
      }
      this.waiting.get(a.id)?.(a);
    });
    this.child.once('exit', () => {
      for (const w of [...this.waiting.values()]) w(undefined);
    });
  }

  private ask(req: Omit<ProbeRequest, 'id'>): Promise<string | undefined> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const settle = (a: ProbeAnswer | undefined): void => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(a?.ok ? a.body : undefined);
      };
      const timer = setTimeout(() => settle(undefined), ANSWER_TIMEOUT_MS);
      this.waiting.set(id, settle);
      if (this.child.exitCode !== null || this.child.signalCode !== null) return settle(undefined);
      this.child.stdin!.write(`${JSON.stringify({ id, ...req })}\n`);
    });
  }

  /** A resolver's /metrics (only the fleet's namespaces reach its address). */
  async resolver(metricsUrl: string): Promise<ResolverSample | undefined> {
    const text = await this.ask({ url: metricsUrl });
    return text === undefined ? undefined : { cache: parseCacheCounts(text), sessions: parseGauge(text, 'strata_resolver_sessions') };
  }

  /** INFO stats of a Redis node. */
  async redis(host: string, port: number): Promise<RedisStats | undefined> {
    const text = await this.ask({ redis: `${host}:${port}` });
    return text === undefined ? undefined : parseRedisStats(text);
  }

  /** Closes its stdin (it exits at once) and waits for it. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2_000);
    await gone;
    clearTimeout(timer);
  }
}

export async function redisCliIn(ns: string, host: string, port: number, ...args: string[]): Promise<Ran> {
  return execIn(ns, ['redis-cli', '-h', host, '-p', String(port), ...args], 10_000);
}
