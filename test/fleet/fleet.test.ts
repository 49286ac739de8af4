import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { processAlive } from '@strata/harness';
import { fleetUnsupported, runFleet, FLEET_DEFAULTS } from './fleet';
import { formatResult } from './report';
import { FLEET_PREFIX, listNetns, run } from './netns';
import { claimRunDir, clearStaleRuns, mountsUnder, newRunId, runDirOf } from './run-state';

const skip = fleetUnsupported() ?? false;

/** Nothing of a run is left: namespaces, mounts, its folder, processes. */
function assertGone(runId: string, pids: number[] = []): void {
  assert.deepEqual(
    listNetns().filter((n) => n.startsWith(`${FLEET_PREFIX}${runId}-`)),
    [],
    'namespaces left',
  );
  assert.deepEqual(mountsUnder(runDirOf(runId)), [], 'mounts left');
  assert.equal(fs.existsSync(runDirOf(runId)), false, 'run folder left');
  assert.deepEqual(pids.filter(processAlive), [], 'processes left');
}

/** The operator script as a child; resolves its run id once `line` shows on stderr. */
function startScript(args: string[], line: RegExp): { child: ChildProcess; runId: Promise<string>; reached: Promise<void>; exit: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, [path.join(__dirname, 'run-fleet.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let resolveId: (id: string) => void;
  let resolveReached: () => void;
  const runId = new Promise<string>((r) => (resolveId = r));
  const reached = new Promise<void>((r) => (resolveReached = r));
  child.stdout!.resume();
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    const id = /fleet: run ([0-9a-f]+) in /.exec(err);
    if (id) resolveId(id[1]);
    if (line.test(err)) resolveReached();
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, runId, reached, exit, stderr: () => err };
}

async function bounded<T>(p: Promise<T>, ms: number, what: string, diag: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms; stderr:\n${diag()}`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('a fleet in network namespaces: 2 resolvers, a 3-node Redis Cluster, 4 hosts', { skip }, () => {
  test('every host reads through a resolver and a Redis node dying; its tree equals the kernel overlay; nothing is left', async () => {
    const { result, fleet } = await runFleet({ ...FLEET_DEFAULTS, hosts: 4, seconds: 10, dirs: 250, verifySeconds: 45, say: (l) => console.log(l) });
    console.log(formatResult(result));
    assert.deepEqual(result.problems, []);
    assert.equal(result.hosts.length, 4);
    for (const h of result.hosts) {
      const s = h.summary!;
      assert.ok(s, `${h.role} summary`);
      assert.equal(h.readerExit, 0, h.role);
      assert.equal(s.failures, 0, `${h.role}: ${JSON.stringify(s.firstFailures)}`);
      assert.deepEqual(h.treeDifferences, [], h.role);
      assert.equal(s.unverified, 0);
      assert.ok(s.cold.count > 0, `${h.role} read files`);
      assert.ok(s.readsAfterMark > 0, `${h.role} kept reading after the kill`);
      assert.equal(h.agent.failedOps.EIO ?? 0, 0);
      assert.equal(h.agent.exit, '0');
      assert.ok(s.all.p99Ms !== null && h.readsPerSec !== null);
    }
    // The faults met real work: reads that reached the resolvers after the kill, streams that moved.
    assert.ok(
      result.hosts.reduce((n, h) => n + (h.summary?.coldAfterMark.count ?? 0), 0) > 0,
      'some first reads of a file came after the kill',
    );
    const streams = result.killed.sessions.map((n) => n ?? 0);
    const victim = Number(/^res(\d)/.exec(result.killed.resolver)![1]);
    if (streams[victim] > 0) assert.ok(result.hosts.some((h) => h.agent.sessionBroken > 0), 'the killed resolver held streams: agents saw them break');
    assert.ok(result.cache.total.redisHit + result.cache.total.redisMiss > 0, 'the resolvers used Redis');
    assert.ok(result.redis.hits > 0, 'Redis served hits');
    assertGone(result.runId, fleet.pids);
  });

  test('a run killed with SIGKILL leaves a stale run; the next one clears it (processes, mounts, namespaces, folder)', async () => {
    const s = startScript(['--hosts', '1', '--seconds', '30', '--dirs', '40'], /fleet up in/);
    try {
      await bounded(s.reached, 60_000, 'fleet up', s.stderr);
      const runId = await s.runId;
      s.child.kill('SIGKILL');
      await s.exit;
      assert.ok(listNetns().some((n) => n.startsWith(`${FLEET_PREFIX}${runId}-`)), 'the crash left its namespaces');
      assert.ok(mountsUnder(runDirOf(runId)).length > 0, 'and its kernel overlays');
      const report = clearStaleRuns();
      assert.ok(report.runs.includes(runId), JSON.stringify(report));
      assert.deepEqual(report.problems, []);
      assertGone(runId);
    } finally {
      s.child.kill('SIGKILL');
    }
  });

  test('SIGINT removes the fleet and exits 130', async () => {
    const s = startScript(['--hosts', '2', '--seconds', '30', '--dirs', '40'], /workload:/);
    try {
      await bounded(s.reached, 60_000, 'workload start', s.stderr);
      const runId = await s.runId;
      s.child.kill('SIGINT');
      assert.equal(await bounded(s.exit, 30_000, 'exit after SIGINT', s.stderr), 130);
      assertGone(runId);
    } finally {
      s.child.kill('SIGKILL');
    }
  });
});

describe('stale runs', { skip }, () => {
  test('a run whose owner is gone is cleared; a live one is left alone', async () => {
    const dead = newRunId();
    const dir = runDirOf(dead);
    fs.mkdirSync(path.join(dir, 'mnt'), { recursive: true });
    // A process that has exited: its pid names no one now (or someone else, with another start time).
    const gone = spawnSync('true');
    fs.writeFileSync(path.join(dir, 'owner'), `${gone.pid} 0\n`);
    const ns = `${FLEET_PREFIX}${dead}-host0`;
    run('ip', ['netns', 'add', ns]);
    const sleeper = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', 'sleep', '600'], { stdio: 'ignore', detached: true });
    const sleeperGone = new Promise((r) => sleeper.once('exit', r));
    await new Promise((r) => sleeper.once('spawn', r));
    run('mount', ['-t', 'tmpfs', 'tmpfs', path.join(dir, 'mnt')]);
    const live = newRunId();
    claimRunDir(live);
    const liveNs = `${FLEET_PREFIX}${live}-hub`;
    run('ip', ['netns', 'add', liveNs]);
    try {
      const r = clearStaleRuns();
      assert.ok(r.runs.includes(dead));
      assert.ok(!r.runs.includes(live), 'the live run is not stale');
      assert.deepEqual(r.problems, []);
      await bounded(sleeperGone, 5_000, 'the stale run\'s process killed', () => '');
      assertGone(dead, [sleeper.pid!]);
      assert.ok(listNetns().includes(liveNs));
      assert.ok(fs.existsSync(runDirOf(live)));
    } finally {
      sleeper.kill('SIGKILL');
      spawnSync('umount', ['-l', path.join(dir, 'mnt')]);
      spawnSync('ip', ['netns', 'del', ns]);
      spawnSync('ip', ['netns', 'del', liveNs]);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(runDirOf(live), { recursive: true, force: true });
    }
  });
});
