import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { STRATA_BIN, exitOf, parseLogLine, startStrata, type LogLine, type StrataRole } from '@strata/launcher';

export const REPO = path.resolve(__dirname, '../../..');
export { STRATA_BIN };
export type { LogLine };
export { parseLogLine };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every 25 ms until it gives a value (not undefined or false); throws after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export interface ServiceProcess {
  child: ChildProcess;
  logs: LogLine[];
  /** SIGTERM (or the given signal; SIGKILL if it outlasts the launcher's grace) and wait for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exit: Promise<number | null>;
}

export interface ResolverProcess extends ServiceProcess {
  address: string;
  port: number;
}

/** How long a service may take to log that it is ready before it is killed. */
const READY_TIMEOUT_MS = 15_000;

/** Starts `strata <role> <args>` at debug level, keeping every JSON log line; resolves with the first line whose event is `readyEvent`. */
async function startService(
  role: StrataRole,
  args: string[],
  readyEvent: string,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<ServiceProcess & { ready: LogLine }> {
  const logs: LogLine[] = [];
  const { process: p, ready } = await startStrata({
    role,
    args,
    env: { STRATA_LOG_LEVEL: 'debug', ...env },
    nodeArgs,
    onLine: (line) => logs.push(line),
    readyEvent,
    readyTimeoutMs: READY_TIMEOUT_MS,
  });
  return {
    child: p.child,
    logs,
    exit: p.exit.then((s) => s.code),
    ready,
    stop: async (signal = 'SIGTERM') => (await p.stop(signal)).code,
  };
}

export interface ResolverArgs {
  store: string;
  redis?: string;
  port?: number;
  extra?: string[];
  env?: Record<string, string>;
  /** Flags for node itself (profiling, GC). */
  nodeArgs?: string[];
}

/** `strata resolver` as a real process; resolves once it logs that it is listening. */
export async function startResolver(a: ResolverArgs): Promise<ResolverProcess> {
  const args = ['--store', a.store, '--listen', `127.0.0.1:${a.port ?? 0}`, ...(a.redis ? ['--redis', a.redis] : []), ...(a.extra ?? [])];
  const s = await startService('resolver', args, 'resolver.listening', a.env, a.nodeArgs);
  const port = s.ready.port as number;
  return { ...s, address: `127.0.0.1:${port}`, port };
}

export interface AgentArgs {
  resolver: string;
  /** Control socket; default a fresh one in a temp directory. */
  socket?: string;
  /** LAYER:MOUNTPOINT flags. */
  mounts?: string[];
  extra?: string[];
  env?: Record<string, string>;
  /** Flags for node itself (e.g. V8 GC flags in crash tests). */
  nodeArgs?: string[];
  /**
   * Let the agent hand its mounts to a successor (default false: the agent
   * runs --no-takeover, so its mounts end with it and a test that stops it
   * leaves nothing held for a successor that never comes).
   */
  takeover?: boolean;
}

export interface AgentProcess extends ServiceProcess {
  socket: string;
  /** `strata mount --json` through the CLI; throws with its stderr on failure. */
  mount(layer: string, mountpoint: string): Record<string, unknown>;
  umount(mountpoint: string, lazy?: boolean): void;
}

/** `strata agent` as a real process (FUSE needs root); resolves once its control socket listens. */
export async function startAgent(a: AgentArgs): Promise<AgentProcess> {
  const ownDir = a.socket ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'strata-agent-'));
  const socket = a.socket ?? path.join(ownDir!, 'agent.sock');
  // The data cache of an agent with a directory of its own goes there too, so a killed agent leaves nothing behind.
  const cacheDir = ownDir && !(a.extra ?? []).includes('--data-cache-dir') ? ['--data-cache-dir', ownDir] : [];
  const args = ['--resolver', a.resolver, '--socket', socket, ...cacheDir, ...(a.mounts ?? []).flatMap((m) => ['--mount', m]), ...(a.takeover === true ? [] : ['--no-takeover']), ...(a.extra ?? [])];
  const s = await startService('agent', args, 'agent.ready', a.env, a.nodeArgs);
  // The socket directory goes with the agent (a successor given the same socket path brings its own).
  void s.exit.then(() => ownDir && fs.rmSync(ownDir, { recursive: true, force: true }));
  return {
    ...s,
    socket,
    mount(layer, mountpoint) {
      const r = strata(['mount', layer, mountpoint, '--socket', socket, '--json']);
      if (r.status !== 0) throw new Error(`strata mount ${layer} ${mountpoint}: ${r.stderr.trim()}`);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    },
    umount(mountpoint, lazy = false) {
      const r = strata(['umount', mountpoint, '--socket', socket, ...(lazy ? ['--lazy'] : [])]);
      if (r.status !== 0) throw new Error(`strata umount ${mountpoint}: ${r.stderr.trim()}`);
    },
  };
}

/** Detaches whatever is mounted at `target` (test teardown after a failure); never throws. */
export function forceUnmount(target: string): void {
  spawnSync('umount', ['-l', target], { stdio: 'ignore' });
}

/** True when this process may hold FUSE mounts (root, /dev/fuse present). */
export function canMountFuse(): boolean {
  return process.getuid?.() === 0 && fs.existsSync('/dev/fuse');
}

export interface RedisProcess {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop). */
  restart(): Promise<void>;
}

function redisServerBinary(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export const HAVE_REDIS = redisServerBinary() !== undefined;

/** PING on loopback; false on an error or no answer within a second (a port someone else holds silently). */
async function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(1_000, () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
  });
}

/** Debian's redis-server on a free loopback port, no persistence; stop what you start. */
export async function startRedis(extra: string[] = [], portIn?: number): Promise<RedisProcess> {
  const port = portIn ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-redis-'));
  let child: ChildProcess;
  const launch = async (): Promise<void> => {
    fs.mkdirSync(dir, { recursive: true });
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], {
      stdio: 'ignore',
    });
    await waitFor(`redis on ${port}`, async () => ((await redisPing(port)) ? true : undefined));
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exitOf(child);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
    restart: launch,
  };
}

/** Runs redis-cli and returns its stdout. */
export function redisCli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A three-master Redis Cluster on loopback. */
export async function startRedisCluster(): Promise<{ url: string; nodes: RedisProcess[]; stop(): Promise<void> }> {
  const nodes: RedisProcess[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    nodes.push(await startRedis(['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'], port));
  }
  const r = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`cluster create failed: ${r.stdout} ${r.stderr}`);
  await waitFor('cluster ok', () => (redisCli(nodes[0].port, 'cluster', 'info').includes('cluster_state:ok') ? true : undefined));
  return {
    url: `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    nodes,
    stop: async () => {
      for (const n of nodes) await n.stop();
    },
  };
}

/** Runs the CLI; never throws on a non-zero exit. */
export function strata(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string; raw: Buffer } {
  const r = spawnSync(process.execPath, [STRATA_BIN, ...args], { env: { ...process.env, ...env }, maxBuffer: 256 << 20 });
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), raw: r.stdout };
}

/** Whether a process with this pid exists (signal 0 asks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resident set size of a process, in bytes (Linux). */
export function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}
