import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO, canMountFuse, canMountOverlay, forceUnmount, freePort, HAVE_REDIS, mountOverlay, startAgent, startRedis, startResolver, strata, waitFor, type AgentProcess, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { wideStack } from '../support/wide-fixture';
import { within } from '../support/bounded';

const skip = canMountOverlay() && canMountFuse() ? false : 'needs root, overlayfs and /dev/fuse';
const FIND_FORMAT = '%P|%y|%m|%s|%n|%i\\n';

/** find over a tree: every entry lstat'ed, sorted. */
function findSync(root: string): string[] {
  const r = spawnSync('find', ['.', '-printf', FIND_FORMAT], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).sort();
}

/** find in the background; `started` resolves at its first output, `done` with its exit and output. */
function findAsync(root: string): { started: Promise<void>; done: Promise<{ status: number | null; lines: string[]; stderr: string }>; running(): boolean } {
  const child = spawn('find', ['.', '-printf', FIND_FORMAT], { cwd: root });
  let out = '';
  let err = '';
  let resolveStarted: () => void;
  const started = new Promise<void>((r) => (resolveStarted = r));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    resolveStarted();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const done = new Promise<{ status: number | null; lines: string[]; stderr: string }>((resolve) =>
    child.on('close', (status) => resolve({ status, lines: out.split('\n').filter(Boolean).sort(), stderr: err })),
  );
  return { started, done, running: () => child.exitCode === null };
}

function cli(args: string[], socket: string): { status: number | null; stderr: string; stdout: string } {
  return strata([...args, '--socket', socket]);
}

describe('agent faults: resolvers and Redis dying under a mount', { skip }, () => {
  let fx: StoreFixture;
  let work: string;
  let kernel: string;
  let expected: string[];
  let unmountKernel: (() => Promise<void>) | undefined;
  const cleanups: (() => Promise<unknown> | void)[] = [];

  before(async () => {
    fx = await makeStore(wideStack(1500, 4), 'trusted', 'w');
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-faults-'));
    kernel = path.join(work, 'kernel');
    const layersDir = path.join(fx.store, 'layers');
    unmountKernel = await mountOverlay(layersDir, fx.rootsTopFirst.map((r) => path.relative(layersDir, r)), kernel);
    expected = findSync(kernel);
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await unmountKernel?.();
    fs.rmSync(work, { recursive: true, force: true });
    fx?.cleanup();
  });

  function mountpoint(name: string): string {
    const p = path.join(work, name);
    fs.mkdirSync(p, { recursive: true });
    cleanups.push(() => forceUnmount(p));
    return p;
  }

  async function resolverOn(port: number, redis?: string): Promise<ResolverProcess> {
    const r = await startResolver({ store: fx.store, port, redis });
    cleanups.push(() => r.stop('SIGKILL'));
    return r;
  }

  async function agentFor(address: string, extra: string[] = [], socket?: string): Promise<AgentProcess> {
    const a = await startAgent({ resolver: address, extra, socket });
    cleanups.push(() => a.stop());
    return a;
  }

  /** A resolver on `port` (with `redis`), an agent of it given `extra`, and w2 mounted through it at a new mountpoint `name`. */
  async function w2Mounted(name: string, extra: string[], port: number, redis?: string): Promise<{ resolver: ResolverProcess; agent: AgentProcess; mnt: string }> {
    const resolver = await resolverOn(port, redis);
    const agent = await agentFor(resolver.address, extra);
    const mnt = mountpoint(name);
    agent.mount('w2', mnt);
    return { resolver, agent, mnt };
  }

  test('a resolver killed and restarted in the middle of a find: the find completes, identical to the kernel', async () => {
    const port = await freePort();
    const { resolver, agent, mnt } = await w2Mounted('killed', ['--prefetch-entries', '0', '--deadline-ms', '10000'], port);
    const find = findAsync(mnt);
    await within('find to print its first entries', find.started);
    assert.ok(find.running(), 'find still running when the resolver dies');
    await resolver.stop('SIGKILL');
    // Back only once the agent has seen its stream break: the find meets a resolver that is really gone.
    await waitFor('the agent to see its resolver go', () => (agent.logs.some((l) => l.event === 'agent.resolver.unreachable') ? true : undefined), 10_000);
    await resolverOn(port);
    const r = await within('find to finish', find.done, 120_000);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    assert.ok(expected.length > 7000, `${expected.length} entries`);
    assert.deepEqual(r.lines, expected);
    const events = (name: string): Record<string, unknown>[] => agent.logs.filter((l) => l.event === name);
    assert.equal(events('agent.resolver.unreachable').length, 1, 'one event for the outage of the one resolver');
    await waitFor('the return logged', () => events('agent.resolver.reachable').length > 0 || undefined);
    assert.equal(events('agent.resolver.reachable').length, 1);
    assert.equal(events('agent.resolver.reachable')[0].resolver, resolver.address);
    assert.equal(fs.readFileSync(path.join(mnt, 'tree/d0001/f1'), 'utf8'), 'snapshot rewrote 1/1\n');
  });

  test('two resolvers share an agent\'s load; when one stops, the other serves everything', async () => {
    const a = await resolverOn(0);
    const b = await resolverOn(0);
    const agent = await agentFor(`${a.address},${b.address}`, ['--prefetch-entries', '0']);
    const first = mountpoint('pair1');
    agent.mount('w2', first);
    assert.deepEqual(findSync(first), expected);
    assert.equal(await a.stop('SIGTERM'), 0);
    const second = mountpoint('pair2');
    agent.mount('w1', second);
    const layersDir = path.join(fx.store, 'layers');
    const lower = path.join(work, 'kernel-w1');
    cleanups.push(await mountOverlay(layersDir, fx.rootsTopFirst.slice(1).map((r) => path.relative(layersDir, r)), lower));
    assert.deepEqual(findSync(second), findSync(lower));
    assert.equal(await b.stop('SIGTERM'), 0);
    const served = (r: ResolverProcess): number => {
      const s = r.logs.find((l) => l.event === 'resolver.stopped') as { hits: { memory: number }; misses: number } | undefined;
      return s ? s.hits.memory + s.misses : 0;
    };
    assert.ok(served(a) > 500, `first resolver served ${served(a)} lookups`);
    assert.ok(served(b) > 500, `second resolver served ${served(b)} lookups`);
  });

  test('every resolver down: operations fail with EIO after the deadline; the same mount recovers without remounting', async () => {
    const port = await freePort();
    const { resolver, agent, mnt } = await w2Mounted('down', ['--prefetch-entries', '0', '--deadline-ms', '1000'], port);
    assert.equal(fs.readdirSync(path.join(mnt, 'tree/d0002')).length, 5);
    await resolver.stop('SIGKILL');
    const t0 = Date.now();
    const ls = spawnSync('ls', [path.join(mnt, 'tree/d0003')], { encoding: 'utf8', timeout: 30_000 });
    const elapsed = Date.now() - t0;
    assert.equal(ls.status, 2, ls.stderr);
    assert.match(ls.stderr, /Input\/output error/);
    assert.ok(elapsed < 10_000, `ls returned after ${elapsed} ms (deadline 1000 ms)`);
    assert.equal(fs.readdirSync(path.join(mnt, 'tree/d0002')).length, 5, 'what is cached still answers');
    // An uncached read fails within the deadline, not twice it (the kernel asks for the page again after its readahead failed).
    const t1 = Date.now();
    const cat = spawnSync('cat', [path.join(mnt, 'tree/d0002', fs.readdirSync(path.join(mnt, 'tree/d0002'))[0])], { encoding: 'utf8', timeout: 30_000 });
    const catMs = Date.now() - t1;
    assert.match(cat.stderr, /Input\/output error/);
    assert.ok(catMs < 1600, `cat failed after ${catMs} ms (deadline 1000 ms)`);
    await waitFor('the outage logged', () => agent.logs.some((l) => l.event === 'agent.resolver.down') || undefined);
    await resolverOn(port);
    await waitFor('the mount to answer again', () => {
      try {
        return fs.readdirSync(path.join(mnt, 'tree/d0003')).join() === fs.readdirSync(path.join(kernel, 'tree/d0003')).join() ? true : undefined;
      } catch {
        return undefined;
      }
    });
    // Other directories may still meet the client's reconnect backoff for a moment: the whole tree must come back, bounded by waitFor.
    await waitFor('the whole tree to answer again', () => {
      try {
        return JSON.stringify(findSync(mnt)) === JSON.stringify(expected) ? true : undefined;
      } catch {
        return undefined;
      }
    }, 30_000);
    assert.deepEqual(findSync(mnt), expected);
    await waitFor('recovery logged', () => agent.logs.some((l) => l.event === 'agent.resolver.up') || undefined);
    // One event when it went, one when it came back, with what failed in between: nothing per request or per retry.
    const count = (name: string): number => agent.logs.filter((l) => l.event === name).length;
    assert.equal(count('agent.resolver.down'), 1);
    assert.equal(count('agent.resolver.up'), 1);
    const up = agent.logs.find((l) => l.event === 'agent.resolver.up') as { failedOps: number; downMs: number };
    assert.ok(up.failedOps >= 1 && up.downMs > 0, JSON.stringify(up));
    assert.equal(count('agent.resolver.unreachable'), 1);
    assert.equal(count('agent.resolver.reachable'), 1);
  });

  test('Redis killed in the middle of a find: the find completes from the store', { skip: HAVE_REDIS ? false : 'needs redis-server' }, async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const { resolver, mnt } = await w2Mounted('redis', ['--prefetch-entries', '0'], 0, redis.url);
    const find = findAsync(mnt);
    await within('find to print its first entries', find.started);
    await redis.stop();
    const r = await within('find to finish', find.done, 120_000);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.lines, expected);
    await waitFor('resolver to notice', () => resolver.logs.some((l) => l.event === 'cache.redis.down') || undefined);
  });

  test('an agent killed with SIGKILL (--no-takeover) leaves a dead mount; the next agent on the same socket clears it and mounts it again', async () => {
    const resolver = await resolverOn(0);
    const socket = path.join(work, 'stale-agent.sock');
    const first = await agentFor(resolver.address, [], socket);
    const mnt = mountpoint('stale');
    first.mount('w2', mnt);
    await first.stop('SIGKILL');
    // stat could still answer from the kernel's attribute cache; a listing must ask the (dead) agent.
    const dead = spawnSync('ls', [mnt], { encoding: 'utf8' });
    assert.match(dead.stderr, /Transport endpoint is not connected/, dead.stdout);
    const second = await agentFor(resolver.address, [], socket);
    assert.ok(second.logs.some((l) => l.event === 'agent.stale_mount_cleared' && l.mountpoint === mnt));
    // Not an empty directory where the layer was: what `strata mount` made is mounted again (the desired state).
    assert.ok(second.logs.some((l) => l.event === 'agent.mount_restored' && l.mountpoint === mnt), 'the mount is restored');
    assert.equal(fs.readFileSync(path.join(mnt, 'tree/d0010/only'), 'utf8'), 'opaque\n');
    const fd = fs.openSync(path.join(mnt, 'tree/d0011/f2'), 'r');
    try {
      assert.equal(await second.stop('SIGTERM'), 0, 'SIGTERM with a file open still exits 0');
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(fs.readdirSync(mnt).length, 0, 'SIGTERM unmounted');
  });

  test('a second agent on the same socket refuses to start and touches nothing of the running one', async () => {
    const resolver = await resolverOn(0);
    const socket = path.join(work, 'shared-agent.sock');
    const first = await agentFor(resolver.address, [], socket);
    const mnt = mountpoint('shared');
    first.mount('w2', mnt);
    const state = fs.readFileSync(`${socket}.mounts.json`, 'utf8');
    const r = spawnSync(process.execPath, [path.join(REPO, 'bin/strata'), 'agent', '--resolver', resolver.address, '--socket', socket], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /another agent .* is running|another agent is listening/);
    assert.ok(!r.stderr.includes('stale_mount_cleared'), 'it cleared nothing');
    // The first agent's mount, state file and socket are as they were.
    assert.equal(fs.readFileSync(path.join(mnt, 'tree/d0010/only'), 'utf8'), 'opaque\n');
    assert.equal(fs.readFileSync(`${socket}.mounts.json`, 'utf8'), state);
    assert.equal(first.mount('w1', mountpoint('shared-2')).layerName, 'w1');
  });

  test('mounting and unmounting many times, also lazily under a busy cwd, keeps the agent alive', async () => {
    const resolver = await resolverOn(0);
    const agent = await startAgent({ resolver: resolver.address, nodeArgs: ['--gc-interval=500'] });
    cleanups.push(() => agent.stop());
    const mnt = mountpoint('cycle');
    for (let i = 0; i < 4; i++) {
      agent.mount('w1', mnt);
      // Holds the old mount busy (its cwd) until killed, across the lazy unmount and the remount.
      const holder = spawn('sleep', ['60'], { cwd: mnt });
      const gone = new Promise((r) => holder.on('close', r));
      assert.throws(() => agent.umount(mnt), /busy/);
      agent.umount(mnt, true);
      agent.mount('w2', mnt);
      assert.equal(fs.readdirSync(path.join(mnt, 'tree/d0000')).sort().join(','), 'only');
      holder.kill();
      await within('the holder (sleep) to die', gone, 10_000);
      agent.umount(mnt);
    }
    assert.equal(agent.child.exitCode, null, 'agent alive');
  });

  test('clear errors: missing or file mountpoints, unknown layers, double mounts, no agent', async () => {
    const resolver = await resolverOn(0);
    const agent = await agentFor(resolver.address);
    const mnt = mountpoint('errors');
    const file = path.join(work, 'a-file');
    fs.writeFileSync(file, '');
    const fails = (args: string[], pattern: RegExp): void => {
      const r = cli(args, agent.socket);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    };
    fails(['mount', 'w2', path.join(work, 'nope')], /mountpoint .*nope does not exist/);
    fails(['mount', 'w2', file], /is not a directory/);
    fails(['mount', 'no-such-layer', mnt], /layer "no-such-layer" does not exist/);
    fails(['mount', '987654', mnt], /layer "987654" does not exist/);
    agent.mount('w2', mnt);
    fails(['mount', 'w1', mnt], /already a strata mount/);
    fails(['mount', 'w1', path.join(mnt, 'tree')], /inside the strata mount/);
    fails(['mount', 'w1', kernel], /already a mount point/);
    fails(['umount', work], /not a strata mount/);
    const listed = JSON.parse(cli(['mounts', '--json'], agent.socket).stdout) as { mounts: { mountpoint: string; layerName: string; chain: number[] }[] };
    assert.deepEqual(
      listed.mounts.map((m) => [m.mountpoint, m.layerName, m.chain.length]),
      [[mnt, 'w2', 3]],
    );
    assert.match(cli(['mounts'], agent.socket).stdout, new RegExp(`${mnt}\\s+3\\s+w2\\s+3>2>1\\s+sealed\\s+serving\\s+ro`));
    agent.umount(mnt);
    assert.deepEqual(JSON.parse(cli(['mounts', '--json'], agent.socket).stdout), { mounts: [] });
    const none = cli(['mounts'], path.join(work, 'no-agent.sock'));
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no agent is listening on .*no-agent\.sock/);
  });
});
