import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { forceUnmount, freePort, mountOverlay, redisCli, unmountOrDetach, startAgent, startResolver, waitFor, type AgentProcess, type RedisProcess, type ResolverProcess } from '@strata/harness';
import type { GuestFilesystem, Stack } from './stacks';

/** One mounted system under test. */
export interface Running {
  mnt: string;
  /** Peak resident memory (VmHWM) of the processes that serve the mount, by role, in bytes. */
  peakMemory(): Record<string, number>;
  /** CPU time (user + system, every thread) of the processes that serve the mount so far, ms; absent for the kernel. */
  cpuMs?(): number;
  /** The same, process by process (strata: agent and resolver), ms. */
  cpuByRole?(): Record<string, number>;
  /** Calls the resolver has answered so far, by method (its metrics), e.g. Session.read, ExtentMap. */
  resolverCalls?(): Promise<Record<string, number>>;
  /** Resolves once work the system does on its own after a read of `file` is done (strata: the file is in the agent's data cache). */
  settled?(file: string): Promise<void>;
  stop(): Promise<void>;
}

export interface System {
  name: string;
  /** `profileDir`: where node's CPU profiles of the serving processes go (strata only), one folder per role. */
  start(stack: Stack, mnt: string, profileDir?: string): Promise<Running>;
}

function peakOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** utime + stime of a process (all its threads) from /proc, ms. */
function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  // Fields after the command name, which sits in parentheses and may hold spaces.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  return (ticks * 1000) / CLOCK_TICKS;
}
/** USER_HZ: what /proc counts CPU time in on Linux. */
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function mountKernel(stack: Stack, mnt: string): Promise<() => Promise<void>> {
  return mountOverlay('/', stack.layersTopFirst, mnt);
}

export const kernel: System = {
  name: 'kernel overlayfs',
  async start(stack, mnt) {
    const stop = await mountKernel(stack, mnt);
    return { mnt, peakMemory: () => ({}), stop };
  },
};

export const fuseOverlayfs: System = {
  name: 'fuse-overlayfs',
  async start(stack, mnt) {
    fs.mkdirSync(mnt, { recursive: true });
    // Only lower layers: fuse-overlayfs serves them read-only. It daemonizes once mounted.
    execFileSync('fuse-overlayfs', ['-o', `lowerdir=${stack.layersTopFirst.join(':')}`, mnt]);
    return { mnt, peakMemory: () => ({}), stop: () => unmountOrDetach(mnt) };
  },
};

export interface StrataOptions {
  /**
   * Start the agent with `--store-view <the stack's store>`: sealed layers'
   * file bytes read straight from the store by the resolver's extent maps,
   * `dir:` files handed to the session whole (served by its native pread
   * under the default `--file-opens auto`, by FUSE passthrough with
   * `--file-opens agent`; issue 28).
   */
  storeView?: boolean;
}

/** strata as a host runs it: a resolver (in-process cache, or Redis behind it) and an agent. */
export function strata(name: string, redis: () => RedisProcess | undefined, o: StrataOptions = {}): System & { host(stack: Stack, mnt: string, profileDir?: string): Promise<StrataHost> } {
  const host = async (stack: Stack, mnt: string, profileDir?: string): Promise<StrataHost> => {
    fs.mkdirSync(mnt, { recursive: true });
    const profile = (role: string): string[] => {
      if (profileDir === undefined) return [];
      fs.mkdirSync(path.join(profileDir, role), { recursive: true });
      return ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, role)}`];
    };
    // Its metrics on a port of its own: how the bytes travelled (Session reads, extent maps) is counted per figure.
    const metrics = `127.0.0.1:${await freePort()}`;
    const resolver = await startResolver({ store: stack.store, redis: redis()?.url, env: { STRATA_LOG_LEVEL: 'info' }, nodeArgs: profile('resolver'), extra: ['--metrics-listen', metrics] });
    let agent: AgentProcess | undefined;
    try {
      // STRATA_BENCH_AGENT_ARGS: extra agent flags while profiling (e.g. --data-cache-mb 0).
      const extra = process.env.STRATA_BENCH_AGENT_ARGS?.split(' ').filter((a) => a !== '') ?? [];
      const view = o.storeView ? ['--store-view', stack.store] : [];
      agent = await startAgent({ resolver: resolver.address, env: { STRATA_LOG_LEVEL: 'info' }, extra: [...view, ...extra], nodeArgs: profile('agent') });
      agent.mount(stack.topLayer, mnt);
      return new StrataHost(mnt, resolver, agent, metrics);
    } catch (err) {
      await agent?.stop();
      await resolver.stop();
      throw err;
    }
  };
  return {
    name,
    host,
    start: host,
  };
}

/** Requests answered by method, from the resolver's request-duration histogram counts. */
export function callCounts(metrics: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of metrics.split('\n')) {
    const m = /^strata_resolver_request_duration_count\{(?:[^}]*,)?method="([^"]+)"[^}]*\} (\d+(?:\.\d+)?)$/.exec(line);
    if (m) counts[m[1]] = (counts[m[1]] ?? 0) + Number(m[2]);
  }
  return counts;
}

/** How long a data cache directory stays unwritten before no fill is taken to be under way. */
const QUIET_MS = 5_000;

/** Bytes allocated to the files under `dir` (a file being filled grows), bounded to a few levels. */
function allocatedBytes(dir: string, depth = 0): number {
  let total = 0;
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const d of names) {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) total += depth < 4 ? allocatedBytes(p, depth + 1) : 0;
    else
      try {
        total += fs.lstatSync(p).blocks * 512;
      } catch {
        // Gone meanwhile (a fill's temporary file renamed): counted on the next look.
      }
  }
  return total;
}

export class StrataHost implements Running {
  constructor(
    readonly mnt: string,
    readonly resolver: ResolverProcess,
    readonly agent: AgentProcess,
    /** host:port of the resolver's Prometheus metrics. */
    readonly metrics: string,
  ) {}

  peakMemory(): Record<string, number> {
    return { agent: peakOf(this.agent.child.pid), resolver: peakOf(this.resolver.child.pid) };
  }

  cpuMs(): number {
    return cpuOf(this.agent.child.pid);
  }

  async resolverCalls(): Promise<Record<string, number>> {
    const res = await fetch(`http://${this.metrics}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return callCounts(await res.text());
  }

  cpuByRole(): Record<string, number> {
    return { agent: cpuOf(this.agent.child.pid), resolver: cpuOf(this.resolver.child.pid) };
  }

  /**
   * The file's fill into the data cache logged as done, or no fill under
   * way: nothing written to the cache directory for QUIET_MS. A file the
   * agent handed to the kernel whole (--store-view, a `dir:` file by
   * passthrough) is never filled, nor is any with --data-cache-mb 0.
   */
  async settled(file: string): Promise<void> {
    const cached = (): boolean => this.agent.logs.some((l) => l.event === 'agent.data_cache.filled' && typeof l.path === 'string' && l.path.endsWith(`/${file}`));
    const dir = path.dirname(this.agent.socket);
    let last = { bytes: allocatedBytes(dir), at: Date.now() };
    await waitFor(
      `${file} in the agent's data cache, or no fill under way`,
      () => {
        if (cached()) return true;
        const bytes = allocatedBytes(dir);
        if (bytes !== last.bytes) last = { bytes, at: Date.now() };
        return Date.now() - last.at >= QUIET_MS || undefined;
      },
      600_000,
    );
  }

  /** Waits until the agent's Walk prefetch (if any) has finished, so it is not measured as part of the next workload. */
  async prefetched(): Promise<void> {
    await waitFor('prefetch', () => this.agent.logs.some((l) => l.event === 'agent.prefetch.done' || l.event === 'agent.prefetch.failed') || undefined, 600_000);
  }

  async stop(): Promise<void> {
    await this.agent.stop();
    forceUnmount(this.mnt);
    await this.resolver.stop();
  }
}

export function flushRedis(redis: RedisProcess | undefined): void {
  if (redis) redisCli(redis.port, 'FLUSHALL');
}

function diskOf(stack: Stack): NonNullable<Stack['disk']> {
  if (!stack.disk) throw new Error(`${stack.name} is not a VM-image stack`);
  return stack.disk;
}

function waitForMount(target: string, what: string): Promise<true> {
  return waitFor(what, () => (fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === target) ? true : undefined), 30_000);
}

/** The limit for disk images: the kernel's driver for the guest's filesystem on a read-only loop device of the flattened disk. */
function kernelLoopOf(filesystem: GuestFilesystem): System {
  return {
    name: `kernel ${filesystem} (loop)`,
    async start(stack, mnt) {
      const { flatDisk, partition } = diskOf(stack);
      fs.mkdirSync(mnt, { recursive: true });
      const dev = execFileSync('losetup', ['-r', '-o', String(partition.start), '--sizelimit', String(partition.size), '-f', '--show', flatDisk], { encoding: 'utf8' }).trim();
      try {
        execFileSync('mount', ['-t', filesystem, '-o', 'ro', dev, mnt]);
      } catch (err) {
        execFileSync('losetup', ['-d', dev]);
        throw err;
      }
      return {
        mnt,
        peakMemory: () => ({}),
        stop: async () => {
          await unmountOrDetach(mnt);
          execFileSync('losetup', ['-d', dev]);
        },
      };
    },
  };
}

export const kernelLoop: Record<GuestFilesystem, System> = { ext4: kernelLoopOf('ext4'), xfs: kernelLoopOf('xfs') };

/**
 * The userspace chain a user would reach for: qemu-storage-daemon exports
 * the image chain (qcow2, or VMDK) as a file through FUSE, and e2fsprogs'
 * fuse2fs serves the ext4 partition in it. There is no such FUSE peer for
 * XFS.
 */
export const qsdFuse2fs: System = {
  name: 'qsd + fuse2fs',
  async start(stack, mnt) {
    const { topImage, topFormat, partition } = diskOf(stack);
    fs.mkdirSync(mnt, { recursive: true });
    const exported = `${mnt}.disk`;
    fs.writeFileSync(exported, '');
    const qsd = spawn(
      'qemu-storage-daemon',
      [
        '--blockdev', `driver=file,node-name=file,filename=${topImage},read-only=on`,
        '--blockdev', `driver=${topFormat},node-name=disk,file=file,read-only=on`,
        '--export', `type=fuse,id=exp,node-name=disk,mountpoint=${exported},writable=off`,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    await waitForMount(exported, 'qemu-storage-daemon to export the disk');
    const fuse2fs = spawn('fuse2fs', [exported, mnt, '-f', '-o', `ro,offset=${partition.start},allow_other`], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitForMount(mnt, 'fuse2fs to mount the partition');
    // Bounded: a daemon that ignores SIGTERM for 10 s is killed, never waited on for ever.
    const exited = (c: ChildProcess): Promise<unknown> =>
      new Promise((r) => {
        if (c.exitCode !== null || c.signalCode !== null) return r(null);
        const kill = setTimeout(() => c.kill('SIGKILL'), 10_000);
        c.once('exit', () => {
          clearTimeout(kill);
          r(null);
        });
      });
    return {
      mnt,
      peakMemory: () => ({ 'qemu-storage-daemon': peakOf(qsd.pid), fuse2fs: peakOf(fuse2fs.pid) }),
      stop: async () => {
        forceUnmount(mnt);
        fuse2fs.kill('SIGTERM');
        await exited(fuse2fs);
        qsd.kill('SIGTERM');
        await exited(qsd);
        forceUnmount(exported);
        fs.rmSync(exported, { force: true });
      },
    };
  },
};
