import { execFile } from 'node:child_process';
import { inNetns } from './netns';

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

const FETCH = 'fetch(process.argv[1]).then(async (r) => { if (!r.ok) process.exit(1); process.stdout.write(await r.text()); }, () => process.exit(1))';

/** The value of a metric without labels (a gauge such as strata_resolver_sessions), 0 when absent. */
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

/** A resolver's /metrics, scraped from inside `ns` (only the fleet's namespaces reach its addresses). */
export async function scrapeResolver(ns: string, url: string): Promise<ResolverSample | undefined> {
  const r = await execIn(ns, [process.execPath, '-e', FETCH, url]);
  return r.code === 0 ? { cache: parseCacheCounts(r.stdout), sessions: parseGauge(r.stdout, 'strata_resolver_sessions') } : undefined;
}

export interface RedisStats {
  hits: number;
  misses: number;
}

export async function redisStats(ns: string, host: string, port: number): Promise<RedisStats | undefined> {
  const r = await execIn(ns, ['redis-cli', '-h', host, '-p', String(port), 'info', 'stats']);
  if (r.code !== 0) return undefined;
  const field = (name: string): number => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(r.stdout)?.[1] ?? NaN);
  const s = { hits: field('keyspace_hits'), misses: field('keyspace_misses') };
  return Number.isFinite(s.hits) && Number.isFinite(s.misses) ? s : undefined;
}

export async function redisCliIn(ns: string, host: string, port: number, ...args: string[]): Promise<Ran> {
  return execIn(ns, ['redis-cli', '-h', host, '-p', String(port), ...args], 10_000);
}
