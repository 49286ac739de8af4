import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO, startRedis, type RedisProcess } from '@strata/harness';
import { debianStack, foreignImageStack, generatedStack, vmImageStack, type Stack } from './stacks';
import { flushRedis, fuseOverlayfs, kernel, kernelLoop, qsdFuse2fs, strata, type Running, type System } from './systems';
import { dropCaches, entries, fullRead, randomReads, sequentialRead, walk } from './workloads';
import { renderReport, renderVariants, type Cpu, type Results } from './report';

/**
 * `npm run bench`: the same layer stacks served by the kernel's overlayfs,
 * fuse-overlayfs and strata (in-process
 * cache, and Redis), and the same VM disk served by the kernel's loop
 * mount, qemu-storage-daemon with fuse2fs, and strata, measured in one run;
 * medians of STRATA_BENCH_RUNS (default 3) runs; writes docs/benchmarks.md.
 * STRATA_BENCH_STACKS adds the VM disk's variants: its Debian guest on XFS
 * (vm-image-xfs), and the ext4 disk as VMDK base + delta (vm-image-vmdk) or
 * as a dynamic VHDX base under a qcow2 snapshot (vm-image-vhdx).
 */
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 3);
/** Warm walks whose agent CPU is summed for the per-lookup figure. */
const CPU_WALKS = 10;
const WORK = path.resolve(process.env.STRATA_BENCH_DIR ?? path.join(REPO, '.bench'));
const log = (s: string): void => void process.stderr.write(`${s}\n`);

let redis: RedisProcess | undefined;
const strataMem = strata('strata (in-process)', () => undefined);
const strataRedis = strata('strata (Redis)', () => redis);
/** The agent reads sealed layers' bytes from the store itself (--store-view; issue 28). */
const strataView = strata('strata (store view)', () => undefined, { storeView: true });
const STRATA_SYSTEMS: System[] = [strataMem, strataView, strataRedis];
const ALL: Record<string, System[]> = {
  kernel: [kernel],
  'fuse-overlayfs': [fuseOverlayfs],
  'kernel-loop': [kernelLoop.ext4, kernelLoop.xfs],
  'qsd-fuse2fs': [qsdFuse2fs],
  strata: [strataMem],
  'strata-view': [strataView],
  'strata-redis': [strataRedis],
};
/** STRATA_BENCH_PROF=DIR: node CPU profiles of every strata agent and resolver, in DIR/<stack>/<system>/<workload>/<role>/. */
const PROF = process.env.STRATA_BENCH_PROF ? path.resolve(process.env.STRATA_BENCH_PROF) : undefined;
/** STRATA_BENCH_SYSTEMS=kernel,strata (default all) and STRATA_BENCH_STACKS=generated (default all) narrow a run while profiling. */
const CHOSEN: System[] = (process.env.STRATA_BENCH_SYSTEMS?.split(',') ?? Object.keys(ALL)).flatMap((k) => {
  const s = ALL[k.trim()];
  if (!s) throw new Error(`unknown system ${k} (${Object.keys(ALL).join(', ')})`);
  return s;
});
/**
 * Who serves which kind of stack: layer folders, or a VM disk image (the
 * kernel's driver for its filesystem; qemu-storage-daemon + fuse2fs only for
 * ext4, as no FUSE driver for XFS is at hand).
 */
function systemsFor(stack: Stack): System[] {
  const peers = stack.disk ? [kernelLoop[stack.disk.filesystem], ...(stack.disk.filesystem === 'ext4' ? [qsdFuse2fs] : [])] : [kernel, fuseOverlayfs];
  return [...peers, ...STRATA_SYSTEMS].filter((s) => CHOSEN.includes(s));
}
/** The default run; the VM-image variants (another guest filesystem, other hypervisors' formats) are chosen by name. */
const DEFAULT_STACKS = ['generated', 'debian', 'vm-image'];
const KNOWN_STACKS = [...DEFAULT_STACKS, 'vm-image-xfs', 'vm-image-vmdk', 'vm-image-vhdx'];
const STACKS = process.env.STRATA_BENCH_STACKS?.split(',').map((s) => s.trim()) ?? DEFAULT_STACKS;
for (const s of STACKS) if (!KNOWN_STACKS.includes(s)) throw new Error(`unknown stack ${s} (${KNOWN_STACKS.join(', ')})`);

const results: Results = {};
/** memory[stack][system role]: peak resident bytes. */
const memory: Record<string, Record<string, number>> = {};
/** CPU of the serving processes during each cold figure. */
const cpu: Cpu = {};
/** Resolver calls (Session reads, extent maps) during each cold figure, same shape. */
const calls: Cpu = {};
/** seen[stack][system]: entries a walk found, so a system serving a different tree is caught, not timed. */
const seen: Record<string, Record<string, number>> = {};

/** The 1, 5 and 15 minute load averages, as `uptime` prints them: the machine is shared. */
const loadNow = (): string => os.loadavg().map((l) => l.toFixed(2)).join(', ');
/** load[stack]: load averages when its measurement began and ended, and the lowest and highest 1-minute load at a figure. */
const load: Record<string, { before: string; after: string; low: number; high: number }> = {};

function record(stack: Stack, measure: string, system: System, value: number): void {
  ((results[stack.name] ??= {})[measure] ??= {})[system.name] ??= [];
  results[stack.name][measure][system.name].push(value);
  const now = os.loadavg()[0];
  const l = (load[stack.name] ??= { before: loadNow(), after: '', low: now, high: now });
  l.low = Math.min(l.low, now);
  l.high = Math.max(l.high, now);
  log(`  ${stack.name} | ${measure} | ${system.name}: ${value.toFixed(1)} (load ${now.toFixed(2)})`);
}

function notePeak(stack: Stack, system: System, r: Running): void {
  for (const [role, bytes] of Object.entries(r.peakMemory())) {
    const key = `${system.name} ${role}`;
    const m = (memory[stack.name] ??= {});
    m[key] = Math.max(m[key] ?? 0, bytes);
  }
}

/** A cold start: page cache dropped, Redis emptied, every process of the system fresh. */
async function cold(system: System, stack: Stack, mnt: string, profileDir?: string): Promise<Running> {
  flushRedis(system === strataRedis ? redis : undefined);
  dropCaches();
  const r = await system.start(stack, mnt, profileDir);
  dropCaches();
  return r;
}

/** One cold start of `system` for `workload`: its processes' peak memory noted and stopped however `fn` ends. */
async function coldStart(stack: Stack, system: System, mnt: string, workload: string, fn: (r: Running) => Promise<void> | void): Promise<void> {
  const profileDir = PROF && STRATA_SYSTEMS.includes(system) ? path.join(PROF, stack.name, system.name.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, ''), workload) : undefined;
  const r = await cold(system, stack, mnt, profileDir);
  try {
    await fn(r);
  } finally {
    notePeak(stack, system, r);
    await r.stop();
  }
}

/** Records `measure`, and for a system with processes of its own the CPU each spent and the resolver calls made while it was measured. */
async function recordWithCpu(stack: Stack, measure: string, system: System, r: Running, run: () => number): Promise<void> {
  const callsBefore = await r.resolverCalls?.().catch(() => undefined);
  const before = r.cpuByRole?.();
  const value = run();
  const after = r.cpuByRole?.();
  const callsAfter = await r.resolverCalls?.().catch(() => undefined);
  record(stack, measure, system, value);
  if (!before || !after) return;
  const bySystem = (((cpu[stack.name] ??= {})[measure] ??= {})[system.name] ??= {});
  for (const [role, ms] of Object.entries(after)) (bySystem[role] ??= []).push(ms - (before[role] ?? 0));
  if (!callsBefore || !callsAfter) return;
  const byMethod = (((calls[stack.name] ??= {})[measure] ??= {})[system.name] ??= {});
  for (const [method, n] of Object.entries(callsAfter)) (byMethod[method] ??= []).push(n - (callsBefore[method] ?? 0));
}

async function measure(stack: Stack): Promise<void> {
  load[stack.name] = { before: loadNow(), after: '', low: os.loadavg()[0], high: os.loadavg()[0] };
  try {
    await measureRuns(stack);
  } finally {
    load[stack.name].after = loadNow();
  }
}

async function measureRuns(stack: Stack): Promise<void> {
  const mnt = path.join(WORK, 'mnt', stack.name);
  const systems = systemsFor(stack);
  for (let run = 1; run <= RUNS; run++) {
    log(`${stack.name}: run ${run} of ${RUNS}`);
    for (const system of systems) {
      await coldStart(stack, system, mnt, 'walk', async (r) => {
        await recordWithCpu(stack, 'cold walk (ms)', system, r, () => walk(r.mnt));
        record(stack, 'warm walk (ms)', system, walk(r.mnt));
        const cpuBefore = r.cpuMs?.();
        if (cpuBefore !== undefined) {
          // Every entry of a warm walk is a lookup the agent already knows: its CPU, all threads, over enough walks
          // that /proc's 10 ms ticks do not dominate.
          for (let i = 0; i < CPU_WALKS; i++) walk(r.mnt);
          record(stack, 'agent CPU per 1,000 cached lookups (ms)', system, ((r.cpuMs?.() ?? cpuBefore) - cpuBefore) / ((CPU_WALKS * stack.files) / 1000));
        }
        (seen[stack.name] ??= {})[system.name] = entries(r.mnt);
        log(`  ${stack.name} | entries walked | ${system.name}: ${seen[stack.name][system.name]}`);
      });
      await coldStart(stack, system, mnt, 'full-read', async (r) => {
        await recordWithCpu(stack, 'cold full read (ms)', system, r, () => fullRead(r.mnt, stack.bigFile));
        record(stack, 'warm full read (ms)', system, fullRead(r.mnt, stack.bigFile));
      });
      if (!stack.bigFile) continue;
      const big = (m: string): string => path.join(m, stack.bigFile!);
      await coldStart(stack, system, mnt, 'sequential', async (r) => {
        await recordWithCpu(stack, '1 GiB sequential read, cold (MB/s)', system, r, () => sequentialRead(big(r.mnt)));
        record(stack, '1 GiB sequential read, warm (MB/s)', system, sequentialRead(big(r.mnt)));
      });
      await coldStart(stack, system, mnt, 'random', async (r) => {
        await recordWithCpu(stack, 'random 4 KiB reads, cold (IOPS)', system, r, () => randomReads(big(r.mnt)));
        // Warm: the file was read whole once and whatever the system does with that (strata: the agent's data cache) is done.
        sequentialRead(big(r.mnt));
        await r.settled?.(stack.bigFile!);
        record(stack, 'random 4 KiB reads, warm (IOPS)', system, randomReads(big(r.mnt), 20_000));
      });
    }
    if (!systems.includes(strataRedis)) continue;
    // A second host joins after the first warmed Redis: fresh resolver and agent, fresh kernel caches.
    flushRedis(redis);
    dropCaches();
    const first = await strataRedis.host(stack, mnt);
    try {
      record(stack, 'cold walk, first host (ms)', strataRedis, walk(first.mnt));
      const second = await strataRedis.host(stack, `${mnt}-second`);
      try {
        dropCaches();
        record(stack, 'cold walk, second host (ms)', strataRedis, walk(second.mnt));
      } finally {
        await second.stop();
      }
    } finally {
      await first.stop();
    }
  }
}

/** The commit measured, marked when the tree has changes not committed (others edit it meanwhile). */
function commitOf(): string {
  const git = (...args: string[]): string => spawnSync('git', ['-C', REPO, ...args], { encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown';
  return git('status', '--porcelain', '--untracked-files=no') ? `${head} (with changes not committed)` : head;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark mounts filesystems and drops caches: run it as root');
  fs.mkdirSync(WORK, { recursive: true });
  // Taken before anything runs: others commit to the shared tree meanwhile.
  const commit = commitOf();
  redis = await startRedis();
  try {
    log(`building stacks under ${WORK} (kept for the next run)`);
    const stacks: Stack[] = [];
    if (STACKS.includes('generated')) stacks.push(await generatedStack(WORK));
    const wanted = (...names: string[]): boolean => names.some((n) => STACKS.includes(n));
    if (wanted('debian', 'vm-image', 'vm-image-xfs', 'vm-image-vmdk', 'vm-image-vhdx')) {
      const debian = await debianStack(WORK, log);
      if (wanted('debian')) stacks.push(debian);
      // The VMDK and VHDX stacks are the vm-image disk converted, so it is built for them too.
      const vmImage = wanted('vm-image', 'vm-image-vmdk', 'vm-image-vhdx') ? await vmImageStack(WORK, debian, log) : undefined;
      if (vmImage && wanted('vm-image')) stacks.push(vmImage);
      if (wanted('vm-image-xfs')) stacks.push(await vmImageStack(WORK, debian, log, 'xfs'));
      for (const format of ['vmdk', 'vhdx'] as const) if (vmImage && wanted(`vm-image-${format}`)) stacks.push(await foreignImageStack(WORK, vmImage, format, log));
    }
    for (const s of stacks) await measure(s);
    const report = renderReport({
      date: new Date().toISOString().slice(0, 10),
      machine: `${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.release()}`,
      runs: RUNS,
      commit,
      stacks: stacks.map((s) => ({ name: s.name, files: s.files, peers: systemsFor(s).filter((x) => !STRATA_SYSTEMS.includes(x)).map((x) => x.name), strata: systemsFor(s).filter((x) => STRATA_SYSTEMS.includes(x)).map((x) => x.name), entries: seen[s.name] ?? {}, load: load[s.name] })),
      results,
      memory,
      cpu,
      calls,
    });
    process.stdout.write(`${report}\n`);
    const variants = renderVariants(results);
    if (variants) process.stdout.write(`\n${variants}\n`);
    if (process.env.STRATA_BENCH_SYSTEMS || process.env.STRATA_BENCH_STACKS) return; // a partial run does not replace the published figures
    const doc = path.join(REPO, 'docs/benchmarks.md');
    const start = '<!-- side-by-side:start -->';
    const end = '<!-- side-by-side:end -->';
    const text = fs.readFileSync(doc, 'utf8');
    const block = `${start}\n${report}\n${end}`;
    const next = text.includes(start) ? text.slice(0, text.indexOf(start)) + block + text.slice(text.indexOf(end) + end.length) : text.replace(/\n## /, `\n${block}\n\n## `);
    fs.writeFileSync(doc, next);
    log(`wrote ${doc}`);
  } finally {
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
