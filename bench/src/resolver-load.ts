import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient, type SessionClient, type SessionPayload } from '@strata/client';
import { Catalog } from '@strata/layers';
import { startRedis, startResolver, type RedisProcess, type ResolverProcess } from '@strata/harness';
import { makeBenchCerts } from './bench-certs';
import { Samples, fmt } from './stats';

/**
 * Resolver load generator: requests/s and p50/p99 of Stat, ReadDir and Read,
 * unary and over one Session stream, with the in-process cache and with
 * Redis; then the cost of mutual TLS on Session Stat and Read (plaintext
 * against mTLS with access control enforced, side by side).
 * Usage: npm run load [-- --seconds N --concurrency N --rounds N --only mtls].
 */

const args = process.argv.slice(2);
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 3);
const CONCURRENCY = arg('concurrency', 32);
const ROUNDS = arg('rounds', 3);
const ONLY = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const DIRS = 20;
const FILES = 100;
const BIG = 64 << 20;

async function buildStore(): Promise<{ store: string; top: number }> {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-load-'));
  for (let l = 0; l < 3; l++) {
    for (let d = 0; d < DIRS; d++) {
      const dir = path.join(store, `layers/${l}/d${d}`);
      fs.mkdirSync(dir, { recursive: true });
      for (let f = l; f < FILES; f += 3) fs.writeFileSync(path.join(dir, `f${f}`), `layer ${l} file ${f}\n`);
    }
  }
  fs.writeFileSync(path.join(store, 'layers/0/big.img'), Buffer.alloc(BIG, 1));
  const catalog = new Catalog(store);
  await catalog.init();
  let base = 0;
  for (let l = 0; l < 3; l++) {
    const layer = await catalog.create({ source: `dir:layers/${l}`, layerType: l === 0 ? 'base' : 'snapshot', base: base ? { id: base } : undefined });
    base = layer.layerId;
  }
  return { store, top: base };
}

type Op = 'Stat' | 'ReadDir' | 'Read';

function payload(op: Op, top: number, i: number): SessionPayload {
  const layer = { ref: { $case: 'id' as const, id: top } };
  switch (op) {
    case 'Stat':
      return { $case: 'stat', stat: { layer, path: Buffer.from(`/d${i % DIRS}/f${i % FILES}`) } };
    case 'ReadDir':
      return { $case: 'readDir', readDir: { layer, path: Buffer.from(`/d${i % DIRS}`), offset: 0, limit: 0 } };
    case 'Read':
      return { $case: 'read', read: { layer, path: Buffer.from('/big.img'), offset: ((i * 7919) % (BIG / 4096)) * 4096, length: 4096 } };
  }
}

function unaryCall(client: StrataClient, op: Op, top: number, i: number): Promise<unknown> {
  const ref = { id: top };
  const p = payload(op, top, i);
  switch (p.$case) {
    case 'stat':
      return client.stat(ref, p.stat.path);
    case 'readDir':
      return client.readDirPage(ref, p.readDir.path);
    case 'read': {
      const r = p.read;
      return (async () => {
        for await (const c of client.read(ref, r.path, r.offset, r.length)) void c;
      })();
    }
    default:
      throw new Error('unreachable');
  }
}

/** Keeps `concurrency` requests in flight for `seconds` (or until `count` were sent); returns req/s and latencies. */
async function drive(call: (i: number) => Promise<unknown>, seconds: number, concurrency: number, count = Infinity): Promise<{ rps: number; s: Samples }> {
  const s = new Samples();
  const end = Date.now() + seconds * 1000;
  let i = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < end && i < count) {
      const t = process.hrtime.bigint();
      await call(i++);
      s.add(Number(process.hrtime.bigint() - t));
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { rps: s.count / ((Date.now() - t0) / 1000), s };
}

interface Row {
  cache: string;
  op: Op;
  via: string;
  rps: number;
  p50: number;
  p99: number;
}

async function measure(label: string, resolver: ResolverProcess, top: number, rows: Row[]): Promise<void> {
  const client = new StrataClient({ resolver: resolver.address });
  const session: SessionClient = client.session({ deadlineMs: 30_000 });
  for (const op of ['Stat', 'ReadDir', 'Read'] as Op[]) {
    // Warm: every key once, so the figures are for cached metadata.
    for (let i = 0; i < DIRS * FILES; i++) await session.request(payload(op, top, i));
    for (const via of ['unary', 'session'] as const) {
      const call = via === 'unary' ? (i: number) => unaryCall(client, op, top, i) : (i: number) => session.request(payload(op, top, i));
      await drive(call, 0.5, CONCURRENCY);
      const { rps, s } = await drive(call, SECONDS, CONCURRENCY);
      rows.push({ cache: label, op, via, rps, p50: s.quantileMs(0.5), p99: s.quantileMs(0.99) });
      process.stderr.write(`${label} ${op} ${via}: ${fmt(rps, 0)} req/s\n`);
    }
  }
  session.close();
  client.close();
}

/** A fresh resolver over a Redis another one filled: every Stat is a Redis hit the first time. */
async function redisFirstTouch(store: string, redis: RedisProcess, top: number): Promise<Row> {
  const r = await startResolver({ store, redis: redis.url });
  const client = new StrataClient({ resolver: r.address });
  const session = client.session();
  const { rps, s } = await drive((i) => session.request(payload('Stat', top, i)), 60, CONCURRENCY, DIRS * FILES);
  session.close();
  client.close();
  await r.stop();
  return { cache: 'redis (fresh resolver, first touch)', op: 'Stat', via: 'session', rps, p50: s.quantileMs(0.5), p99: s.quantileMs(0.99) };
}

const VARIANTS = ['plaintext', 'TLS', 'mutual TLS'] as const;
/** cpuUs: the resolver process's CPU time (user + system, every thread) per request, in µs. */
type Figures = { rps: number; p50: number; p99: number; cpuUs: number };

/** CPU time a process has used, in seconds (/proc/PID/stat utime + stime; clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface MtlsRow {
  op: Op;
  /** In VARIANTS order. */
  figures: Figures[];
  /** In VARIANTS order: the median over rounds of plaintext req/s / this variant's req/s in the same round. */
  ratios: number[];
  /** In VARIANTS order: this variant's resolver CPU per request / plaintext's (medians). */
  cpuRatios: number[];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Session Stat and Read on three resolvers over the same store: plaintext,
 * server-only TLS, and mutual TLS with the access policy enforced (the
 * client is an --admin, so every request passes the check it would pass in
 * production), which is what the TLS row is there to separate. Rounds
 * alternate between them so that drift of a busy machine falls on each;
 * each figure is the median of the rounds.
 */
async function mtlsCost(store: string, top: number): Promise<MtlsRow[]> {
  const certs = makeBenchCerts();
  const env = { STRATA_LOG_LEVEL: 'info' };
  const tlsArgs = ['--tls-cert', certs.server.cert, '--tls-key', certs.server.key];
  const resolvers = [
    await startResolver({ store, env }),
    await startResolver({ store, env, extra: tlsArgs }),
    await startResolver({ store, env, extra: [...tlsArgs, '--tls-client-ca', certs.server.clientCa, '--admin', certs.clientIdentity] }),
  ];
  const clients = [
    new StrataClient({ resolver: resolvers[0].address }),
    new StrataClient({ resolver: resolvers[1].address, tls: { ca: certs.client.ca } }),
    new StrataClient({ resolver: resolvers[2].address, tls: certs.client }),
  ];
  const sessions = clients.map((c) => c.session({ deadlineMs: 30_000 }));
  const rows: MtlsRow[] = [];
  try {
    for (const op of ['Stat', 'Read'] as Op[]) {
      for (const s of sessions) for (let i = 0; i < DIRS * FILES; i++) await s.request(payload(op, top, i));
      const got = VARIANTS.map(() => ({ rps: [] as number[], p50: [] as number[], p99: [] as number[], cpuUs: [] as number[] }));
      for (let round = 0; round < ROUNDS; round++) {
        for (let k = 0; k < VARIANTS.length; k++) {
          const call = (i: number): Promise<unknown> => sessions[k].request(payload(op, top, i));
          await drive(call, 0.5, CONCURRENCY);
          const pid = resolvers[k].child.pid as number;
          const cpu0 = cpuSeconds(pid);
          const { rps, s } = await drive(call, SECONDS, CONCURRENCY);
          got[k].cpuUs.push(((cpuSeconds(pid) - cpu0) / s.count) * 1e6);
          got[k].rps.push(rps);
          got[k].p50.push(s.quantileMs(0.5));
          got[k].p99.push(s.quantileMs(0.99));
          process.stderr.write(`mtls cost ${op} ${VARIANTS[k]} round ${round + 1}: ${fmt(rps, 0)} req/s\n`);
        }
      }
      // Per round, each variant against the plaintext run just before it: load from elsewhere on the machine falls on both sides of a ratio.
      const ratios = got.map((g) => median(g.rps.map((rps, round) => got[0].rps[round] / rps)));
      const figures = got.map((g) => ({ rps: median(g.rps), p50: median(g.p50), p99: median(g.p99), cpuUs: median(g.cpuUs) }));
      rows.push({ op, figures, ratios, cpuRatios: figures.map((f) => f.cpuUs / figures[0].cpuUs) });
    }
  } finally {
    for (const s of sessions) s.close();
    for (const c of clients) c.close();
    for (const r of resolvers) await r.stop();
    certs.remove();
  }
  return rows;
}

function printMtls(rows: MtlsRow[]): void {
  console.log(`\nmTLS cost, Session stream, in-process cache, ${CONCURRENCY} requests in flight, median of ${ROUNDS} alternating rounds of ${SECONDS} s`);
  console.log('(mutual TLS: client certificate required and grants enforced; ratio: median over rounds of plaintext req/s / that row\'s req/s in the same round)\n');
  console.log('(resolver CPU: user + system time of the resolver process per request; less moved by other load on the machine than req/s)\n');
  console.log('| op | transport | req/s | ratio | resolver CPU µs/req | CPU ratio | p50 ms | p99 ms |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    r.figures.forEach((f, k) => {
      console.log(`| Session ${r.op} | ${VARIANTS[k]} | ${fmt(f.rps, 0)} | ${fmt(r.ratios[k])}× | ${fmt(f.cpuUs, 1)} | ${fmt(r.cpuRatios[k])}× | ${fmt(f.p50)} | ${fmt(f.p99)} |`);
    });
  }
}

function header(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  return `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} x ${cpu}, node ${process.version}, kernel ${os.release()}, loopback`;
}

async function main(): Promise<void> {
  const { store, top } = await buildStore();
  if (ONLY === 'mtls') {
    try {
      const rows = await mtlsCost(store, top);
      console.log(`\nResolver load, ${header()}`);
      printMtls(rows);
    } finally {
      fs.rmSync(store, { recursive: true, force: true });
    }
    return;
  }
  const rows: Row[] = [];
  let mtlsRows: MtlsRow[];
  let redis: RedisProcess | undefined;
  try {
    const mem = await startResolver({ store });
    await measure('in-process', mem, top, rows);
    await mem.stop();
    redis = await startRedis();
    const withRedis = await startResolver({ store, redis: redis.url });
    await measure('redis', withRedis, top, rows);
    await withRedis.stop();
    rows.push(await redisFirstTouch(store, redis, top));
    mtlsRows = await mtlsCost(store, top);
  } finally {
    await redis?.stop();
    fs.rmSync(store, { recursive: true, force: true });
  }
  console.log(`\nResolver load, ${header()}, ${CONCURRENCY} requests in flight, ${SECONDS} s per row\n`);
  console.log('| cache | op | via | req/s | p50 ms | p99 ms |');
  console.log('| --- | --- | --- | ---: | ---: | ---: |');
  for (const r of rows) console.log(`| ${r.cache} | ${r.op} | ${r.via} | ${fmt(r.rps, 0)} | ${fmt(r.p50)} | ${fmt(r.p99)} |`);
  printMtls(mtlsRows);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
