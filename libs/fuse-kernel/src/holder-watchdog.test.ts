/**
 * The holder with real FUSE mounts. The mount is made by a child process
 * (the "agent") that puts its session's fds in the holder and heartbeats;
 * the test stops or kills it and reads the mount from other children.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { FuseSession } from './session';
import { HolderClient } from './holder-client';
import { closeFd } from './fd-passing';
import { holderSkipReason, startHolder, started, tempDir, type TestHolder } from './holder-harness';
import { run, skipReason, tempMountpoint, within } from './mount-harness';
import { topMountAt } from './mountinfo';
import { ToyFs } from './toy-fs';
import type { SessionHandover } from './types';

const TIMEOUT_MS = 1000;
/** Poll and scheduling slack on a loaded two-core machine. */
const MARGIN_MS = 2000;

/** The agent: mounts a toy tree, hands its fds to the holder, heartbeats, then idles until killed. */
const AGENT = `
const [mnt, socket, timeoutMs, hard] = process.argv.slice(1);
const dist = ${JSON.stringify(__dirname)};
const { FuseSession } = require(dist + '/session.js');
const { ToyFs } = require(dist + '/toy-fs.js');
const { HolderClient } = require(dist + '/holder-client.js');
(async () => {
  const toy = new ToyFs(1n);
  toy.file(1n, 'hello', Buffer.from('hello\\n'));
  const base = toy.handlers();
  // "slow" is read and never answered: in flight when the agent stops or dies.
  const handlers = { ...base, lookup: (p, name, c) => (name.toString() === 'slow' ? new Promise(() => undefined) : base.lookup(p, name, c)) };
  const session = await FuseSession.mount(mnt, handlers, { rootAttr: toy.nodes.get(1n).attr, threads: 2 });
  const client = await HolderClient.connect(socket);
  await client.put('m', { mountpoint: mnt, hard: hard === 'hard', handover: session.handoverState() }, session.handoverFds());
  client.startHeartbeat(Number(timeoutMs));
  console.log('ready');
  setInterval(() => undefined, 1000);
})().catch((e) => { console.error(e); process.exit(1); });
`;

/** The same tree as the agent's (same inos: a successor serves the nodeids the kernel holds). */
function toyTree(): ToyFs {
  const toy = new ToyFs(1n);
  toy.file(1n, 'hello', Buffer.from('hello\n'));
  return toy;
}

async function startAgent(mnt: string, socket: string, hard = false, timeoutMs = TIMEOUT_MS): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', AGENT, '--', mnt, socket, String(timeoutMs), hard ? 'hard' : 'soft'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  await within(
    new Promise<void>((resolve, reject) => {
      const tick = setInterval(() => {
        if (out.includes('ready\n')) {
          clearInterval(tick);
          resolve();
        } else if (child.exitCode !== null) {
          clearInterval(tick);
          reject(new Error(`the agent exited ${child.exitCode}`));
        }
      }, 10);
    }),
    15_000,
    'the agent to mount',
  );
  return child;
}

/** stat(1) of a name: what the mount answered (errno text) and how long it took. */
async function statName(file: string, timeoutMs = 15_000): Promise<{ answer: string; ms: number; status: number | null }> {
  const t0 = Date.now();
  const r = await run('stat', ['-c', '%s', file], { timeoutMs });
  const answer = r.status === 0 ? 'ok' : /No such file/.test(r.stderr) ? 'ENOENT' : /Input\/output/.test(r.stderr) ? 'EIO' : /not connected/.test(r.stderr) ? 'ENOTCONN' : r.signal ? `killed ${r.signal}` : r.stderr.trim();
  return { answer, ms: r.endedAt - t0, status: r.status };
}

function mounted(mnt: string): boolean {
  return topMountAt(Buffer.from(mnt))?.fsType.startsWith('fuse') ?? false;
}

async function cleanUp(agent: ChildProcess | undefined, holder: TestHolder | undefined, mnt: { remove: () => void }, dir: { remove: () => void }): Promise<void> {
  if (agent && agent.exitCode === null && agent.signalCode === null) {
    agent.kill('SIGCONT');
    agent.kill('SIGKILL');
    await within(new Promise((r) => agent.once('exit', r)), 5000, 'the agent to die').catch(() => undefined);
  }
  mnt.remove(); // umount2(MNT_DETACH) first
  await holder?.stop();
  dir.remove();
}

const skip = skipReason() ?? holderSkipReason();

describe('the fd holder with a real FUSE mount', { skip }, () => {
  it(`SIGSTOPped agent: a reader gets EIO within the watchdog's ${TIMEOUT_MS} ms (+ margin), never hangs; SIGCONT serves again`, async () => {
    const dir = tempDir();
    const mnt = tempMountpoint();
    let holder: TestHolder | undefined;
    let agent: ChildProcess | undefined;
    try {
      holder = await started(startHolder(path.join(dir.path, 'h.sock')));
      agent = await startAgent(mnt.path, holder.socket);
      assert.equal((await statName(path.join(mnt.path, 'missing-1'))).answer, 'ENOENT', 'served by the agent');
      assert.equal((await statName(path.join(mnt.path, 'hello'))).answer, 'ok');
      // In flight: read by the agent, waiting in its JavaScript; only FUSE_NOTIFY_RESEND brings it to the holder.
      const inFlight = statName(path.join(mnt.path, 'slow'));
      await new Promise((r) => setTimeout(r, 300));

      agent.kill('SIGSTOP');
      const stopped = await statName(path.join(mnt.path, 'missing-2'));
      assert.equal(stopped.answer, 'EIO');
      assert.ok(stopped.ms <= TIMEOUT_MS + MARGIN_MS, `EIO after ${stopped.ms} ms`);
      const start = await holder.waitLog('watchdog.start');
      assert.deepEqual({ why: start.why, entries: start.entries }, { why: 'stopped', entries: 1 });
      // While stopped, every new request is answered at once.
      const again = await statName(path.join(mnt.path, 'missing-3'));
      assert.equal(again.answer, 'EIO');
      assert.ok(again.ms < 1000, `second EIO after ${again.ms} ms`);
      // Many readers at once: each answered, none left waiting.
      const many = await Promise.all(Array.from({ length: 40 }, (_, i) => statName(path.join(mnt.path, `many-${i}`))));
      assert.deepEqual([...new Set(many.map((m) => m.answer))], ['EIO']);
      const slowest = Math.max(...many.map((m) => m.ms));
      assert.ok(slowest < TIMEOUT_MS + MARGIN_MS, `slowest of 40 parallel readers ${slowest} ms`);
      const slow = await within(inFlight, TIMEOUT_MS + MARGIN_MS + 1000, 'the in-flight reader');
      assert.equal(slow.answer, 'EIO', 'the request the agent had read was resent and answered');
      console.log(`# watchdog: first EIO after ${stopped.ms} ms (timeout ${TIMEOUT_MS}), next after ${again.ms} ms, 40 parallel within ${slowest} ms, in-flight after ${slow.ms} ms`);

      agent.kill('SIGCONT');
      const stop = await holder.waitLog('watchdog.stop', 5000);
      assert.equal(stop.why, 'heartbeat');
      assert.ok((stop.answered as number) >= 43, `answered ${String(stop.answered)}`);
      assert.equal((await statName(path.join(mnt.path, 'missing-4'))).answer, 'ENOENT', 'the agent serves again');
      const r = await run('cat', [path.join(mnt.path, 'hello')], { timeoutMs: 10_000 });
      assert.equal(r.stdout.toString(), 'hello\n');
    } finally {
      await cleanUp(agent, holder, mnt, dir);
    }
  });

  it('a hard entry is left alone: the reader waits for the stopped agent past the timeout and is served after SIGCONT', async () => {
    const dir = tempDir();
    const mnt = tempMountpoint();
    let holder: TestHolder | undefined;
    let agent: ChildProcess | undefined;
    try {
      holder = await started(startHolder(path.join(dir.path, 'h.sock')));
      agent = await startAgent(mnt.path, holder.socket, true);
      agent.kill('SIGSTOP');
      const waiting = statName(path.join(mnt.path, 'missing-1'), 20_000);
      const start = await holder.waitLog('watchdog.start', TIMEOUT_MS + MARGIN_MS);
      assert.equal(start.entries, 0, 'nothing to answer for: the only entry is hard');
      await new Promise((r) => setTimeout(r, 1000));
      const early = await Promise.race([waiting.then(() => 'answered'), new Promise((r) => setTimeout(() => r('waiting'), 10))]);
      assert.equal(early, 'waiting', 'still waiting well past the timeout');
      agent.kill('SIGCONT');
      const served = await within(waiting, 10_000, 'the hard reader');
      assert.equal(served.answer, 'ENOENT');
    } finally {
      await cleanUp(agent, holder, mnt, dir);
    }
  });

  it('SIGKILLed agent: the mount stays, a reader gets EIO (not ENOTCONN) within the bound; a successor adopts the fds from the holder and serves', async () => {
    const dir = tempDir();
    const mnt = tempMountpoint();
    let holder: TestHolder | undefined;
    let agent: ChildProcess | undefined;
    let successor: FuseSession | undefined;
    let client: HolderClient | undefined;
    try {
      holder = await started(startHolder(path.join(dir.path, 'h.sock')));
      agent = await startAgent(mnt.path, holder.socket);
      assert.equal((await statName(path.join(mnt.path, 'missing-1'))).answer, 'ENOENT');
      const inFlight = statName(path.join(mnt.path, 'slow'));
      await new Promise((r) => setTimeout(r, 300));
      const killed = new Promise((r) => agent?.once('exit', r));
      agent.kill('SIGKILL');
      await within(killed, 5000, 'the agent to die');
      const t0 = Date.now();
      assert.ok(mounted(mnt.path), 'still mounted: the holder keeps the connection');

      const orphan = await statName(path.join(mnt.path, 'missing-2'));
      assert.equal(orphan.answer, 'EIO');
      assert.ok(Date.now() - t0 <= TIMEOUT_MS + MARGIN_MS, `EIO ${Date.now() - t0} ms after the kill`);
      assert.equal((await holder.waitLog('watchdog.start')).why, 'absent');
      const slow = await within(inFlight, TIMEOUT_MS + MARGIN_MS, 'the in-flight reader');
      assert.equal(slow.answer, 'EIO', 'what the dead agent had read was resent and answered, not left hanging');

      // The successor: the entry's fds and state, adopted; heartbeats end the watchdog.
      client = await HolderClient.connect(holder.socket);
      const [entry] = await client.list();
      assert.ok(entry);
      const toy = toyTree();
      const t1 = Date.now();
      successor = FuseSession.adopt(entry.fds, entry.meta.handover as SessionHandover, toy.handlers(), { rootAttr: toy.nodes.get(1n)?.attr });
      for (const fd of entry.fds) closeFd(fd); // adopt dup'd them
      client.startHeartbeat(TIMEOUT_MS);
      await holder.waitLog('watchdog.stop', 5000);
      const served = await statName(path.join(mnt.path, 'missing-3'));
      assert.equal(served.answer, 'ENOENT', 'served by the successor');
      const r = await run('cat', [path.join(mnt.path, 'hello')], { timeoutMs: 10_000 });
      assert.equal(r.stdout.toString(), 'hello\n');
      console.log(`# takeover: adopt to first served answer ${Date.now() - t1} ms`);

      // Unmounted for real: the holder sees the connection end and drops the entry by itself.
      await successor.unmount();
      successor = undefined;
      const dropped = await holder.waitLog('holder.drop', 5000);
      assert.deepEqual({ id: dropped.id, why: dropped.why }, { id: 'm', why: 'connection ended' });
      assert.equal((await client.status()).entries, 0);
    } finally {
      client?.close();
      await successor?.unmount().catch(() => undefined);
      await cleanUp(agent, holder, mnt, dir);
    }
  });

  it('a successor adopting before the watchdog fires serves what the SIGKILLed agent had in flight: no failed operation', async () => {
    const dir = tempDir();
    const mnt = tempMountpoint();
    let holder: TestHolder | undefined;
    let agent: ChildProcess | undefined;
    let successor: FuseSession | undefined;
    let client: HolderClient | undefined;
    try {
      holder = await started(startHolder(path.join(dir.path, 'h.sock')));
      agent = await startAgent(mnt.path, holder.socket, false, 10_000);
      const inFlight = statName(path.join(mnt.path, 'slow'));
      await new Promise((r) => setTimeout(r, 300));
      const killed = new Promise((r) => agent?.once('exit', r));
      const t0 = Date.now();
      agent.kill('SIGKILL');
      await within(killed, 5000, 'the agent to die');
      client = await HolderClient.connect(holder.socket);
      client.startHeartbeat(10_000);
      const [entry] = await client.list();
      assert.ok(entry);
      const toy = toyTree();
      successor = FuseSession.adopt(entry.fds, entry.meta.handover as SessionHandover, toy.handlers(), { rootAttr: toy.nodes.get(1n)?.attr });
      for (const fd of entry.fds) closeFd(fd);
      const slow = await within(inFlight, 10_000, 'the in-flight reader');
      assert.equal(slow.answer, 'ENOENT', 'resent by the kernel and answered by the successor');
      console.log(`# takeover: kill to the in-flight request answered by the successor ${Date.now() - t0} ms`);
      assert.equal((await statName(path.join(mnt.path, 'hello'))).answer, 'ok');
      assert.equal(holder.logs.filter((l) => l.event === 'watchdog.start').length, 0, 'no EIO from the holder');
    } finally {
      client?.close();
      await successor?.unmount().catch(() => undefined);
      await cleanUp(agent, holder, mnt, dir);
    }
  });
});
