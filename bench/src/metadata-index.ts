import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { startResolver, waitFor, writeStack, type ResolverProcess } from '@strata/harness';
import { generatedSpecs, register } from './side-by-side/stacks';

/**
 * `node bench/dist/metadata-index.js`: the cold Walk of the generated stack
 * (the shape of bench/src/side-by-side/stacks.ts, without its 1 GiB file)
 * through a resolver that has never seen the chain:
 *
 *   plain   STRATA_METADATA_INDEX=off: the traversal, as before issue 28;
 *   first   no index in the store: the traversal, recording the index and writing it;
 *   second  another resolver process: the Walk answered from the index in the store.
 *
 * Each walk starts a fresh resolver with the kernel's caches dropped (unless
 * STRATA_BENCH_DROP_CACHES=0), as a second host's would be. Medians of
 * STRATA_BENCH_RUNS (default 3) runs. STRATA_BENCH_DIR keeps the stack
 * (default /tmp/strata-bench-metadata-index).
 */
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 3);
const WORK = path.resolve(process.env.STRATA_BENCH_DIR ?? path.join(os.tmpdir(), 'strata-bench-metadata-index'));
const DROP = process.env.STRATA_BENCH_DROP_CACHES !== '0';
const log = (s: string): void => void process.stderr.write(`${s}\n`);

async function stack(): Promise<{ store: string; top: { name: string } }> {
  const store = path.join(WORK, 'store');
  const done = path.join(WORK, '.complete');
  if (!fs.existsSync(done)) {
    log(`generating the stack in ${WORK}`);
    fs.rmSync(WORK, { recursive: true, force: true });
    fs.mkdirSync(path.join(store, 'layers'), { recursive: true });
    writeStack(path.join(store, 'layers'), generatedSpecs(), 'trusted');
    await register(store, ['0', '1', '2'], 'gen');
    fs.writeFileSync(done, '');
  }
  return { store, top: { name: 'gen2' } };
}

function dropCaches(): void {
  if (!DROP) return;
  execFileSync('sync');
  execFileSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
}

interface Walked {
  ms: number;
  entries: number;
  cpuMs: number;
  resolver: ResolverProcess;
}

/** A fresh resolver, cold caches, one full Walk as the agent asks for it at mount (link targets included). */
async function coldWalk(store: string, ref: { name: string }, env: Record<string, string> = {}): Promise<Walked> {
  const resolver = await startResolver({ store, env });
  const client = new StrataClient({ resolver: resolver.address });
  try {
    await client.getLayer(ref);
    dropCaches();
    const cpu0 = cpuMs(resolver);
    const t0 = performance.now();
    let entries = 0;
    for await (const batch of client.walk(ref, '/', { includeLinkTargets: true })) entries += batch.length;
    const ms = performance.now() - t0;
    return { ms, entries, cpuMs: cpuMs(resolver) - cpu0, resolver };
  } finally {
    client.close();
  }
}

/** The resolver's CPU time so far (user + system), from /proc. */
function cpuMs(r: ResolverProcess): number {
  const stat = fs.readFileSync(`/proc/${r.child.pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

/** Paths of the generated stack, spread over its directories. */
function statPaths(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const d = (i * 7) % 1000;
    // Directories d % 20 == 0 are opaque in the top layer: only its files are there.
    out.push(`/srv/d${String(d).padStart(4, '0')}/${d % 20 === 0 ? `only${i % 4}` : `f${5 + (i % 17)}`}.dat`);
  }
  return out;
}

/** A fresh resolver, cold caches, `paths` Stats one after another (as an agent's misses come), over one client. */
async function coldStats(store: string, ref: { name: string }, paths: string[], env: Record<string, string> = {}): Promise<number> {
  const resolver = await startResolver({ store, env });
  const client = new StrataClient({ resolver: resolver.address });
  try {
    await client.getLayer(ref);
    dropCaches();
    const t0 = performance.now();
    for (const p of paths) await client.stat(ref, p);
    return performance.now() - t0;
  } finally {
    client.close();
    await resolver.stop();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const { store, top } = await stack();
  const indexDir = path.join(store, '.strata', 'index');
  const rows: Record<'plain' | 'first' | 'second', { ms: number[]; cpu: number[] }> = { plain: { ms: [], cpu: [] }, first: { ms: [], cpu: [] }, second: { ms: [], cpu: [] } };
  let entries = 0;
  let indexBytes = 0;
  let loadMs = 0;
  const load0 = os.loadavg();
  for (let run = 0; run < RUNS; run++) {
    fs.rmSync(indexDir, { recursive: true, force: true });
    const plain = await coldWalk(store, top, { STRATA_METADATA_INDEX: 'off' });
    await plain.resolver.stop();
    const first = await coldWalk(store, top);
    const built = await waitFor('the index built', () => first.resolver.logs.find((l) => l.event === 'resolver.metadata_index' && l.action === 'built'), 30_000);
    await first.resolver.stop();
    const second = await coldWalk(store, top);
    const loaded = second.resolver.logs.find((l) => l.event === 'resolver.metadata_index' && l.action === 'loaded');
    const served = second.resolver.logs.some((l) => l.event === 'resolver.metadata_index' && l.action === 'served');
    await second.resolver.stop();
    if (!loaded || !served) throw new Error('the second resolver did not answer from the index');
    if (plain.entries !== first.entries || first.entries !== second.entries) throw new Error(`entries differ: ${plain.entries} / ${first.entries} / ${second.entries}`);
    entries = first.entries;
    indexBytes = Number(built.bytes);
    loadMs = Number(loaded.ms);
    for (const [k, w] of [['plain', plain], ['first', first], ['second', second]] as const) {
      rows[k].ms.push(w.ms);
      rows[k].cpu.push(w.cpuMs);
    }
    log(`run ${run + 1}: plain ${plain.ms.toFixed(0)} ms, first ${first.ms.toFixed(0)} ms, second ${second.ms.toFixed(0)} ms (index read ${loadMs} ms)`);
  }
  // The index is in the store now: Stats on fresh resolvers, without and with it.
  const paths = statPaths(2000);
  const statPlain: number[] = [];
  const statIndexed: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    statPlain.push(await coldStats(store, top, paths, { STRATA_METADATA_INDEX: 'off' }));
    statIndexed.push(await coldStats(store, top, paths));
  }
  const m = (k: keyof typeof rows): number => median(rows[k].ms);
  const c = (k: keyof typeof rows): number => median(rows[k].cpu);
  console.log(`metadata index, cold Walk of the generated stack (${entries} entries), ${new Date().toISOString()}, ${os.cpus().length} cores, load ${load0.map((x) => x.toFixed(2)).join(' ')}, kernel caches ${DROP ? 'dropped' : 'kept'}, median of ${RUNS}`);
  console.log(`index file: ${indexBytes} bytes (${(indexBytes / entries).toFixed(1)} bytes/entry), read and checked in ${loadMs} ms`);
  console.log('| resolver | cold Walk (ms) | µs/entry | resolver CPU (ms) |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [k, label] of [['plain', 'without index (traversal)'], ['first', 'first (traversal + build)'], ['second', 'second (from the index)']] as const) {
    console.log(`| ${label} | ${m(k).toFixed(0)} | ${((m(k) * 1000) / entries).toFixed(1)} | ${c(k).toFixed(0)} |`);
  }
  console.log(`${paths.length} Stats in a row, fresh resolver, cold caches: ${median(statPlain).toFixed(0)} ms by traversal, ${median(statIndexed).toFixed(0)} ms from the index (its read included)`);
  console.log(`second ÷ first: ${(m('second') / m('first')).toFixed(3)} (${(m('first') / m('second')).toFixed(1)}× faster); first ÷ plain: ${(m('first') / m('plain')).toFixed(2)} (cost of building)`);
}

main().catch((err: unknown) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
