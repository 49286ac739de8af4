import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO, startResolver, strata, type ResolverProcess } from '@strata/harness';
import { dropCaches } from '../side-by-side/workloads';
import { Cleanup } from './cleanup';
import { diskPair, loopMount, run, type DiskPair } from './disks';
import type { ExpectedChange } from './tree';
import { walkBoth } from './walk-both';

/**
 * `npm run bench:diff`: `strata diff` between a qcow2 snapshot and its base
 * (the pair whose changed clusters say where to look), the same two disks
 * as raw images (no such hint: the full walk of both trees), and
 * virt-diff's approach (both disks loop-mounted by the kernel, both trees
 * walked and compared by lstat), at 3,000 and 30,000 files with the same
 * 20-file change. Every answer must be exactly that change. Prints a table
 * and one JSON line with every figure.
 *
 * STRATA_BENCH_DIR keeps the disks there for the next run (default: a
 * temporary folder, removed); STRATA_BENCH_RUNS (default 5) warm runs per
 * measure; STRATA_BENCH_FILES (default 3000,30000) the tree sizes.
 */

const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 5);
const SIZES = (process.env.STRATA_BENCH_FILES ?? '3000,30000').split(',').map((s) => Number(s.trim()));
const GiB = 2 ** 30;
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const cleanup = new Cleanup(log);

/** 1 GiB for up to 7,500 files, doubling after that (4 GiB at 30,000): room to spare, and mke2fs's 4 KiB-block defaults. */
function diskBytesFor(files: number): number {
  return GiB * 2 ** Math.max(0, Math.ceil(Math.log2(files / 7_500)));
}

type MeasureKey = 'strata-qcow2' | 'strata-raw' | 'kernel-walk' | 'cli-floor';
const MEASURES: { key: MeasureKey; label: string }[] = [
  { key: 'strata-qcow2', label: 'strata diff base snap --json (qcow2 snapshot over its base)' },
  { key: 'strata-raw', label: 'strata diff rawbase rawsnap --json (two raw disks: full walk)' },
  { key: 'kernel-walk', label: "virt-diff's approach (kernel ro loop mounts, fs.promises walk of both)" },
  { key: 'cli-floor', label: 'floor: strata layer get --json (CLI start + one call)' },
];

interface Figures {
  coldMs: number;
  warmMs: number;
  warmRunsMs: number[];
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timed<T>(fn: () => T | Promise<T>): Promise<{ ms: number; value: T }> {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

const lineOf = (c: ExpectedChange): string => `${c.kind} ${c.path}`;

/** Fails the run unless `actual` is exactly `expected` as a set of (path, kind), each once. */
function check(what: string, actual: ExpectedChange[], expected: ExpectedChange[]): void {
  const a = actual.map(lineOf).sort();
  const e = expected.map(lineOf).sort();
  const missing = e.filter((l) => !a.includes(l));
  const extra = a.filter((l) => !e.includes(l));
  const repeated = a.filter((l, i) => a[i - 1] === l);
  if (missing.length || extra.length || repeated.length) {
    throw new Error(`${what}: not the change that was made\n  missing: ${missing.join(', ') || '-'}\n  extra: ${extra.join(', ') || '-'}\n  repeated: ${repeated.join(', ') || '-'}`);
  }
}

class Strata {
  private resolver: ResolverProcess | undefined;
  private stopResolver: (() => Promise<void>) | undefined;

  constructor(private readonly store: string) {}

  async start(): Promise<void> {
    const r = await startResolver({ store: this.store, env: { STRATA_LOG_LEVEL: 'info' } });
    this.resolver = r;
    this.stopResolver = cleanup.add(`resolver pid ${r.child.pid}`, async () => void (await r.stop()));
  }

  async restart(): Promise<void> {
    await this.stopResolver?.();
    dropCaches();
    await this.start();
  }

  cli(args: string[]): string {
    if (!this.resolver) throw new Error('no resolver');
    const r = strata(args, { STRATA_RESOLVER: this.resolver.address });
    if (r.status !== 0) throw new Error(`strata ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Tries each way of creating a layer in turn; returns the arguments the CLI accepted. */
  createLayer(name: string, ...ways: string[][]): string[] {
    const refusals: string[] = [];
    for (const args of ways) {
      try {
        this.cli(['layer', 'create', ...args, '--name', name]);
        for (const why of refusals) log(`  (refused first: ${why})`);
        return args;
      } catch (err) {
        refusals.push(err instanceof Error ? err.message : String(err));
      }
    }
    throw new Error(`layer ${name}: every way was refused:\n  ${refusals.join('\n  ')}`);
  }

  diff(from: string, to: string): ExpectedChange[] {
    const out = JSON.parse(this.cli(['diff', from, to, '--json'])) as { changes: { path: string; pathBase64?: string; kind: ExpectedChange['kind'] }[] };
    return out.changes.map((c) => ({ path: (c.pathBase64 ? Buffer.from(c.pathBase64, 'base64') : Buffer.from(c.path, 'utf8')).toString('latin1'), kind: c.kind }));
  }
}

/**
 * One cold run (prepared by `cold`), which is also the warm-up, then RUNS
 * warm runs; every answer checked.
 */
async function measure(what: string, cold: () => void | Promise<void>, once: () => ExpectedChange[] | Promise<ExpectedChange[]>, expected?: ExpectedChange[]): Promise<Figures> {
  await cold();
  const first = await timed(once);
  if (expected) check(`${what} (cold)`, first.value, expected);
  const warmRunsMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await timed(once);
    if (expected) check(`${what} (warm run ${i + 1})`, r.value, expected);
    warmRunsMs.push(r.ms);
  }
  const f = { coldMs: first.ms, warmMs: median(warmRunsMs), warmRunsMs };
  log(`  ${what}: cold ${f.coldMs.toFixed(0)} ms, warm ${f.warmMs.toFixed(0)} ms (${warmRunsMs.map((m) => m.toFixed(0)).join(' ')})`);
  return f;
}

function table(pairs: DiskPair[], figures: Record<MeasureKey, Figures>[]): string {
  const head = ['measure', ...pairs.map((p) => `${p.files.toLocaleString('en-US')} files`), ...(pairs.length > 1 ? [`${pairs.at(-1)!.files / 1000}k/${pairs[0].files / 1000}k`] : [])];
  const rows: string[][] = [];
  for (const m of MEASURES) {
    for (const which of ['cold', 'warm'] as const) {
      const ms = figures.map((f) => (which === 'cold' ? f[m.key].coldMs : f[m.key].warmMs));
      rows.push([`${m.label}, ${which === 'cold' ? 'cold (first run)' : `warm (median of ${RUNS})`}`, ...ms.map((v) => `${v.toFixed(0)} ms`), ...(ms.length > 1 ? [`${(ms.at(-1)! / ms[0]).toFixed(2)}×`] : [])]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]): string => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [fmt(head), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(fmt)].join('\n');
}

function commit(): string {
  try {
    return run('git', ['rev-parse', '--short', 'HEAD'], REPO).trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark attaches loop devices, mounts and drops caches: run it as root');
  if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error(`STRATA_BENCH_RUNS=${process.env.STRATA_BENCH_RUNS}: expected a positive integer`);
  if (SIZES.some((n) => !Number.isSafeInteger(n) || n < 100)) throw new Error(`STRATA_BENCH_FILES=${process.env.STRATA_BENCH_FILES}: expected sizes of at least 100 files`);
  cleanup.onSignals();
  const keep = process.env.STRATA_BENCH_DIR !== undefined;
  const work = keep ? path.resolve(process.env.STRATA_BENCH_DIR!) : fs.mkdtempSync(path.join(os.tmpdir(), 'strata-image-diff-'));
  if (!keep) cleanup.add(`rm -r ${work}`, () => fs.rmSync(work, { recursive: true, force: true }));
  const store = path.join(work, 'store');
  fs.mkdirSync(store, { recursive: true });
  // Disks may be kept; the catalog is always new, so layer names are free.
  fs.rmSync(path.join(store, '.strata'), { recursive: true, force: true });
  log(`image-diff: disks under ${store}${keep ? ' (kept)' : ''}`);

  const pairs: DiskPair[] = [];
  for (const files of SIZES) pairs.push(await diskPair(store, files, diskBytesFor(files), keep, cleanup, log));

  const s = new Strata(store);
  await s.start();
  const rawSnapshotAs: Record<number, string[]> = {};
  for (const p of pairs) {
    const n = p.files;
    s.createLayer(`base-${n}`, ['--source', `qcow2:${p.baseQcow2}#2`]);
    s.createLayer(`snap-${n}`, ['--source', `qcow2:${p.snapQcow2}#2`, '--type', 'snapshot', '--base', `base-${n}`]);
    s.createLayer(`rawbase-${n}`, ['--source', `raw:${p.baseRaw}#2`]);
    // A raw disk has no backing file, so the catalog may refuse it as an increment of the other: then it is a base of its own.
    rawSnapshotAs[n] = s.createLayer(`rawsnap-${n}`, ['--source', `raw:${p.snapRaw}#2`, '--type', 'incremental', '--base', `rawbase-${n}`], ['--source', `raw:${p.snapRaw}#2`]).slice(2);
    log(`${n} files: rawsnap-${n} created with ${rawSnapshotAs[n].join(' ') || 'no --base (type base)'}`);
  }

  // Cold for strata: page cache dropped and a fresh resolver, then `strata layer list` once, so what is cold is the images and the resolver's caches, not the code.
  const strataCold = async (): Promise<void> => {
    await s.restart();
    s.cli(['layer', 'list', '--json']);
  };
  const figures: Record<MeasureKey, Figures>[] = [];
  for (const p of pairs) {
    const n = p.files;
    log(`${n} files:`);
    const f = {} as Record<MeasureKey, Figures>;
    f['strata-qcow2'] = await measure(`strata diff base-${n} snap-${n}`, strataCold, () => s.diff(`base-${n}`, `snap-${n}`), p.expected);
    f['strata-raw'] = await measure(`strata diff rawbase-${n} rawsnap-${n}`, strataCold, () => s.diff(`rawbase-${n}`, `rawsnap-${n}`), p.expected);
    f['cli-floor'] = await measure('strata layer get', strataCold, () => {
      s.cli(['layer', 'get', `base-${n}`, '--json']);
      return [];
    });
    const mnt = path.join(work, 'mnt');
    const unmountBase = await loopMount(path.join(store, p.baseRaw), p.partition, 'ro', path.join(mnt, `base-${n}`), cleanup);
    const unmountSnap = await loopMount(path.join(store, p.snapRaw), p.partition, 'ro', path.join(mnt, `snap-${n}`), cleanup);
    try {
      f['kernel-walk'] = await measure('kernel loop mounts, both trees walked', dropCaches, () => walkBoth(path.join(mnt, `base-${n}`), path.join(mnt, `snap-${n}`)), p.expected);
    } finally {
      await unmountSnap();
      await unmountBase();
    }
    figures.push(f);
  }

  process.stdout.write(`\n${table(pairs, figures)}\n\n`);
  const report = {
    bench: 'image-diff',
    date: new Date().toISOString(),
    commit: commit(),
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'CPU'}, ${Math.round(os.totalmem() / GiB)} GiB, Node ${process.version}, ${os.release()}`,
    runs: RUNS,
    cold: 'strata: page cache dropped, resolver restarted, `strata layer list` run once (CLI and resolver code warm, images and caches cold); kernel walk: page cache dropped with both disks mounted',
    sizes: pairs.map((p, i) => ({
      files: p.files,
      dirs: p.dirs,
      diskBytes: p.diskBytes,
      changes: p.expected.length,
      baseQcow2Bytes: p.baseFileBytes,
      snapQcow2Bytes: p.snapFileBytes,
      snapOwnGuestBytes: p.snapAllocatedBytes,
      rawSnapshotLayer: rawSnapshotAs[p.files].join(' ') || '--type base',
      ms: figures[i],
    })),
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main()
  .then(() => cleanup.all())
  .catch(async (err: unknown) => {
    process.stderr.write(`bench:diff: ${err instanceof Error ? err.stack : String(err)}\n`);
    await cleanup.all();
    process.exit(1);
  });
