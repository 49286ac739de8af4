/**
 * The workload of one fleet host, run in that host's network namespace:
 * `node reader.js --mount DIR --until MS --verify-by MS [--concurrency N] [--seed N] --tree FILE`.
 * Until the wall clock passes `--until` it walks the mount (readdir + lstat
 * of every entry) and reads every regular file whole (open, read, sha256,
 * close; `--concurrency` at once, in a shuffled order per pass), timing each
 * read. Then it writes the tree it sees (path, mode, size, sha256 or link
 * target; files it could not hash by `--verify-by` are left without one)
 * to `--tree` as JSON lines and prints one JSON summary on stdout,
 * with reads before and after the SIGUSR2 the fleet sends when it kills a
 * resolver and a Redis node. While it reads every file the first time it
 * prints progress lines, `{"cold": N, "of": M}`, by which the fleet picks
 * the moment of the kill. Any failed system call is counted, the first
 * ones kept, and the exit status is 1: a fleet host must never see EIO.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { summarise, type LatencySummary } from './latency';

interface Args {
  mount: string;
  until: number;
  concurrency: number;
  seed: number;
  tree: string;
  verifyBy: number;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string): string => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0 || i + 1 >= argv.length) throw new Error(`reader: --${name} is required`);
    return argv[i + 1];
  };
  const num = (name: string, dflt?: number): number => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0 && dflt !== undefined) return dflt;
    const v = Number(get(name));
    if (!Number.isFinite(v)) throw new Error(`reader: --${name} wants a number`);
    return v;
  };
  return { mount: get('mount'), until: num('until'), concurrency: Math.max(1, num('concurrency', 4)), seed: num('seed', 1), tree: get('tree'), verifyBy: num('verify-by') };
}

const MAX_KEPT_ERRORS = 20;
/** A progress line every this many first reads. */
const PROGRESS_EVERY = 20;
/** The final check reads this many files at once: it has to finish in bounded time even when every read is slow. */
const VERIFY_CONCURRENCY = 16;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

class Failures {
  count = 0;
  readonly kept: { op: string; path: string; code: string }[] = [];

  add(op: string, p: Buffer, err: unknown): void {
    this.count++;
    if (this.kept.length < MAX_KEPT_ERRORS) this.kept.push({ op, path: p.toString('latin1'), code: (err as NodeJS.ErrnoException).code ?? String(err) });
  }
}

function join(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

/** Paths below the mount keep a leading '/', the root is '/': the keys of test/support/tree-snapshot. */
function relKey(mount: Buffer, p: Buffer): string {
  return p.length === mount.length ? '/' : p.subarray(mount.length).toString('latin1');
}

/** readdir + lstat of everything; returns the regular files. */
async function walk(mount: Buffer, failures: Failures): Promise<{ files: Buffer[]; entries: number }> {
  const files: Buffer[] = [];
  let entries = 0;
  const visit = async (dir: Buffer): Promise<void> => {
    let names: Buffer[];
    try {
      names = await fs.promises.readdir(dir, { encoding: 'buffer' });
    } catch (err) {
      failures.add('readdir', dir, err);
      return;
    }
    const subdirs: Buffer[] = [];
    await Promise.all(
      names.map(async (n) => {
        const p = join(dir, n);
        try {
          const st = await fs.promises.lstat(p);
          entries++;
          if (st.isDirectory()) subdirs.push(p);
          else if (st.isFile()) files.push(p);
        } catch (err) {
          failures.add('lstat', p, err);
        }
      }),
    );
    for (const d of subdirs) await visit(d);
  };
  await visit(mount);
  return { files, entries };
}

/** Reads a file whole through `buf`; returns its sha256 and size. */
async function readWhole(p: Buffer, buf: Buffer): Promise<{ sha: string; bytes: number }> {
  const h = createHash('sha256');
  const fh = await fs.promises.open(p, 'r');
  let bytes = 0;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, bytes);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { sha: h.digest('hex'), bytes };
}

function shuffle<T>(items: T[], seed: number): T[] {
  let x = seed >>> 0 || 1;
  for (let i = items.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const j = x % (i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

interface Timed {
  /** performance.now() when the read ended, as wall-clock ms. */
  endedAt: number;
  ms: number;
  cold: boolean;
}

/**
 * Writes the tree as JSON lines (`{"p": path, "mode", "size", "sha"?, "link"?}`):
 * one walk, then the files hashed `concurrency` at a time until `by` (epoch
 * ms). Returns the entry count and how many files were left unhashed.
 */
async function dumpTree(mount: Buffer, out: string, concurrency: number, by: number, failures: Failures): Promise<{ entries: number; unverified: number; reads: LatencySummary; ms: number }> {
  const t0 = performance.now();
  const times: number[] = [];
  const entries: { p: Buffer; st: fs.Stats; sha?: string; link?: string }[] = [];
  const visit = async (p: Buffer): Promise<void> => {
    let st: fs.Stats;
    try {
      st = await fs.promises.lstat(p);
    } catch (err) {
      failures.add('lstat', p, err);
      return;
    }
    const e: (typeof entries)[number] = { p, st };
    entries.push(e);
    const type = st.mode & S_IFMT;
    if (type === S_IFLNK) {
      try {
        e.link = (await fs.promises.readlink(p, { encoding: 'buffer' })).toString('hex');
      } catch (err) {
        failures.add('readlink', p, err);
      }
    }
    if (type !== S_IFDIR) return;
    let names: Buffer[];
    try {
      names = await fs.promises.readdir(p, { encoding: 'buffer' });
    } catch (err) {
      failures.add('readdir', p, err);
      return;
    }
    for (const n of names) await visit(join(p, n));
  };
  await visit(mount);
  const files = entries.filter((e) => (e.st.mode & S_IFMT) === S_IFREG);
  let next = 0;
  let unverified = 0;
  const worker = async (): Promise<void> => {
    const buf = Buffer.alloc(1 << 20);
    while (next < files.length) {
      const e = files[next++];
      if (Date.now() > by) {
        unverified++;
        continue;
      }
      const start = performance.now();
      try {
        e.sha = (await readWhole(e.p, buf)).sha;
        times.push(performance.now() - start);
      } catch (err) {
        failures.add('read', e.p, err);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const lines = entries.map((e) => JSON.stringify({ p: relKey(mount, e.p), mode: e.st.mode, size: e.st.size, sha: e.sha, link: e.link }));
  fs.writeFileSync(out, `${lines.join('\n')}\n`);
  return { entries: entries.length, unverified, reads: summarise(times), ms: Math.round(performance.now() - t0) };
}

export interface ReaderSummary {
  passes: number;
  walkEntries: number;
  reads: number;
  bytes: number;
  elapsedMs: number;
  /** Every read. */
  all: LatencySummary;
  /** First-pass reads (the host had never read the file: they reach the resolvers). */
  cold: LatencySummary;
  coldBeforeMark: LatencySummary;
  coldAfterMark: LatencySummary;
  readsAfterMark: number;
  /** The SIGUSR2 came (else every read counts as before the kill). */
  marked: boolean;
  /** First reads per second before the kill and after it (until the first pass ended). */
  coldPerSecBefore: number | null;
  coldPerSecAfter: number | null;
  /** How long the first pass over every file took; null when the run ended inside it. */
  firstPassMs: number | null;
  treeEntries: number;
  /** Files the final check could not hash before --verify-by. */
  unverified: number;
  /** The final check: how long it took, its reads. */
  verifyMs: number;
  verifyReads: LatencySummary;
  failures: number;
  firstFailures: { op: string; path: string; code: string }[];
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const mount = Buffer.from(a.mount);
  const failures = new Failures();
  const timed: Timed[] = [];
  const origin = Date.now() - performance.now();
  const t0 = Date.now();
  // The kill: reads that end after it count as after it.
  let mark = Infinity;
  process.once('SIGUSR2', () => (mark = Date.now()));
  let passes = 0;
  let walkEntries = 0;
  let bytes = 0;
  let firstPassMs: number | null = null;
  while (Date.now() < a.until) {
    const cold = passes === 0;
    const { files, entries } = await walk(mount, failures);
    walkEntries += entries;
    const queue = shuffle(files, a.seed * 1000 + passes);
    let next = 0;
    let done = 0;
    const progress = (): void => void process.stdout.write(`${JSON.stringify({ cold: done, of: queue.length })}\n`);
    if (cold) progress();
    const worker = async (): Promise<void> => {
      const buf = Buffer.alloc(1 << 20);
      while (next < queue.length && Date.now() < a.until) {
        const p = queue[next++];
        const start = performance.now();
        try {
          bytes += (await readWhole(p, buf)).bytes;
          const end = performance.now();
          timed.push({ endedAt: origin + end, ms: end - start, cold });
        } catch (err) {
          failures.add('read', p, err);
        }
        if (cold && ++done % PROGRESS_EVERY === 0) progress();
      }
    };
    await Promise.all(Array.from({ length: a.concurrency }, worker));
    if (cold && next >= queue.length) firstPassMs = Date.now() - t0;
    passes++;
  }
  const end = Date.now();
  const elapsedMs = end - t0;
  const firstPassEnd = firstPassMs === null ? end : t0 + firstPassMs;
  const rate = (n: number, ms: number): number | null => (ms > 0 ? Math.round((n * 1000) / ms) : null);
  const tree = await dumpTree(mount, a.tree, VERIFY_CONCURRENCY, a.verifyBy, failures);
  const pick = (f: (t: Timed) => boolean): number[] => timed.filter(f).map((t) => t.ms);
  const summary: ReaderSummary = {
    passes,
    walkEntries,
    reads: timed.length,
    bytes,
    elapsedMs,
    all: summarise(timed.map((t) => t.ms)),
    cold: summarise(pick((t) => t.cold)),
    coldBeforeMark: summarise(pick((t) => t.cold && t.endedAt < mark)),
    coldAfterMark: summarise(pick((t) => t.cold && t.endedAt >= mark)),
    readsAfterMark: timed.filter((t) => t.endedAt >= mark).length,
    marked: Number.isFinite(mark),
    coldPerSecBefore: rate(timed.filter((t) => t.cold && t.endedAt < mark).length, Math.min(mark, firstPassEnd) - t0),
    coldPerSecAfter: Number.isFinite(mark) ? rate(timed.filter((t) => t.cold && t.endedAt >= mark).length, firstPassEnd - mark) : null,
    firstPassMs,
    treeEntries: tree.entries,
    unverified: tree.unverified,
    verifyMs: tree.ms,
    verifyReads: tree.reads,
    failures: failures.count,
    firstFailures: failures.kept,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exitCode = failures.count === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`reader: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 2;
});
