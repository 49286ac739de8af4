import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isStrataError } from '@strata/errors';
import { HolderClient } from './holder-client';
import { alive, holderSkipReason, startHolder, started, tempDir } from './holder-harness';
import { closeFd, connectSeqpacket, receivePacket, sendPacket } from './fd-passing';
import { encodeMessage, MessageType } from './holder-protocol';
import { blockFor, waitFor, within } from './mount-harness';

const skip = holderSkipReason();
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('put, list, replace, drop: the holder keeps the very open files (shared offset) after the sender closed its own', { skip }, async () => {
  const dir = tempDir();
  const holder = await started(startHolder(path.join(dir.path, 'h.sock')));
  const client = await HolderClient.connect(holder.socket);
  try {
    const file = path.join(dir.path, 'data');
    fs.writeFileSync(file, 'abcdefgh');
    const fd = fs.openSync(file, 'r');
    const other = fs.openSync('/dev/null', 'r');
    fs.readSync(fd, Buffer.alloc(3), 0, 3, null); // offset 3 in the open file
    await client.put('mount-1', { layer: 'sha256:ab', mountpoint: '/mnt/ü', hard: true }, [fd, other]);
    await client.put('mount-2', { layer: 'l2' }, [other]);
    fs.closeSync(fd);
    fs.closeSync(other);

    const before = openFds();
    const listed = await client.list();
    assert.deepEqual(
      listed.map((e) => ({ id: e.id, meta: e.meta, hard: e.hard, n: e.fds.length })),
      [
        { id: 'mount-1', meta: { layer: 'sha256:ab', mountpoint: '/mnt/ü', hard: true }, hard: true, n: 2 },
        { id: 'mount-2', meta: { layer: 'l2' }, hard: false, n: 1 },
      ],
    );
    assert.equal(openFds(), before + 3);
    const held = listed[0]?.fds[0] as number;
    assert.equal(fs.readlinkSync(`/proc/self/fd/${held}`), file);
    const rest = Buffer.alloc(5);
    assert.equal(fs.readSync(held, rest, 0, 5, null), 5);
    assert.equal(rest.toString(), 'defgh', 'the same open file: its offset came along');
    for (const e of listed) for (const f of e.fds) closeFd(f);
    assert.equal(openFds(), before);

    // Replacing keeps one entry under the id.
    const again = fs.openSync('/dev/zero', 'r');
    await client.put('mount-2', { layer: 'l2', gen: 2 }, [again]);
    fs.closeSync(again);
    const replaced = await client.list();
    assert.deepEqual(replaced.map((e) => [e.id, e.meta, e.fds.map((f) => fs.readlinkSync(`/proc/self/fd/${f}`))]), [
      ['mount-1', { layer: 'sha256:ab', mountpoint: '/mnt/ü', hard: true }, [file, '/dev/null']],
      ['mount-2', { layer: 'l2', gen: 2 }, ['/dev/zero']],
    ]);
    for (const e of replaced) for (const f of e.fds) closeFd(f);

    assert.equal(await client.drop('mount-1'), true);
    assert.equal(await client.drop('mount-1'), false);
    assert.deepEqual((await client.list()).map((e) => e.id), ['mount-2']);
    const status = await client.status();
    assert.deepEqual({ entries: status.entries, fds: status.fds, clients: status.clients, pid: status.pid }, { entries: 1, fds: 1, clients: 1, pid: holder.child.pid });
    assert.equal((await holder.waitLog('holder.drop')).id, 'mount-1');
  } finally {
    client.close();
    await holder.stop();
    dir.remove();
  }
});

test('bounds: ids, meta and fd counts are refused before sending (EINVAL); the holder refuses a put without fds itself', { skip }, async () => {
  const dir = tempDir();
  const holder = await started(startHolder(path.join(dir.path, 'h.sock')));
  const client = await HolderClient.connect(holder.socket);
  const fd = fs.openSync('/dev/null', 'r');
  try {
    const einval = (e: unknown): boolean => isStrataError(e) && e.errnoName === 'EINVAL';
    assert.throws(() => client.put('', {}, [fd]), einval);
    assert.throws(() => client.put('x'.repeat(256), {}, [fd]), einval);
    assert.throws(() => client.put('a', {}, []), einval);
    assert.throws(() => client.put('a', {}, new Array<number>(65).fill(fd)), einval);
    assert.throws(() => client.put('a', { blob: 'x'.repeat(64 * 1024) }, [fd]), einval);
    assert.throws(() => client.startHeartbeat(50), einval);
    // 64 fds and 255-byte ids are fine.
    await client.put('y'.repeat(255), { ok: true }, new Array<number>(64).fill(fd));
    assert.equal((await client.status()).fds, 64);

    // The holder's own checks, past the client's: a raw PUT without fds, then a malformed packet.
    const raw = connectSeqpacket(holder.socket);
    try {
      sendPacket(raw, encodeMessage(MessageType.PUT, { id: Buffer.from('nofds') }));
      const reply = await receivePacket(raw, { timeoutMs: 5000 });
      assert.equal(reply?.bytes.readUInt8(4), MessageType.ERR);
      assert.equal(reply?.bytes.readUInt32LE(12), 22);
      sendPacket(raw, Buffer.from('not the protocol at all'));
      assert.equal(await receivePacket(raw, { timeoutMs: 5000 }), null, 'the holder hung up on garbage');
    } finally {
      closeFd(raw);
    }
    await holder.waitLog('client.bad_message');
    assert.equal((await client.status()).entries, 1, 'and still serves the others');
  } finally {
    fs.closeSync(fd);
    client.close();
    await holder.stop();
    dir.remove();
  }
});

test('one holder per socket: a second exits 0 at once; SIGTERM exits 0, closes what it held and removes its socket', { skip }, async () => {
  const dir = tempDir();
  const socket = path.join(dir.path, 'h.sock');
  const first = await started(startHolder(socket));
  try {
    const second = startHolder(socket);
    const t0 = Date.now();
    assert.deepEqual(await within(second.exited, 5000, 'the second holder to exit'), { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(second.logs[0]?.event, 'holder.already_running');

    // What it holds: the write end of a FIFO whose other end we read; the holder's exit is its EOF.
    const fifo = path.join(dir.path, 'fifo');
    const { status } = await import('node:child_process').then((cp) => cp.spawnSync('mkfifo', [fifo]));
    assert.equal(status, 0);
    const readEnd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const writeEnd = fs.openSync(fifo, fs.constants.O_WRONLY);
    const client = await HolderClient.connect(socket);
    await client.put('fifo', {}, [writeEnd]);
    fs.closeSync(writeEnd);
    client.close();
    assert.throws(() => fs.readSync(readEnd, Buffer.alloc(1)), (e: NodeJS.ErrnoException) => e.code === 'EAGAIN', 'a writer is still open: no EOF');
    first.child.kill('SIGTERM');
    assert.deepEqual(await within(first.exited, 5000, 'the holder to exit'), { code: 0, signal: null });
    assert.equal(fs.readSync(readEnd, Buffer.alloc(1)), 0, 'EOF: the holder closed its copy');
    fs.closeSync(readEnd);
    assert.equal(fs.existsSync(socket), false);
    assert.equal((await first.waitLog('holder.exit')).why, 'SIGTERM');
  } finally {
    await first.stop();
    dir.remove();
  }
});

test('idle exit: only with nothing held and no client connected, after --idle-exit-ms', { skip }, async () => {
  const dir = tempDir();
  const holder = await started(startHolder(path.join(dir.path, 'h.sock'), ['--idle-exit-ms', '300']));
  const fd = fs.openSync('/dev/null', 'r');
  try {
    const client = await HolderClient.connect(holder.socket);
    await client.put('one', {}, [fd]);
    client.close();
    await sleep(900);
    assert.ok(alive(holder.child.pid as number), 'an entry keeps it');
    const again = await HolderClient.connect(holder.socket);
    await again.drop('one');
    await sleep(700);
    assert.ok(alive(holder.child.pid as number), 'a connected client keeps it');
    const t0 = Date.now();
    again.close();
    assert.deepEqual(await within(holder.exited, 5000, 'the idle holder to exit'), { code: 0, signal: null });
    const took = Date.now() - t0;
    assert.ok(took >= 250 && took < 3000, `exited ${took} ms after its last client left`);
    assert.equal((await holder.waitLog('holder.exit')).why, 'idle');
  } finally {
    fs.closeSync(fd);
    await holder.stop();
    dir.remove();
  }
});

test('connect with spawn: two agents at once start one holder between them, detached in its own session', { skip }, async () => {
  const dir = tempDir();
  const socket = path.join(dir.path, 'state', 'holder.sock');
  await assert.rejects(HolderClient.connect(socket), (e: unknown) => isStrataError(e) && e.errnoName === 'ENOENT');
  const log = path.join(dir.path, 'holder.log');
  const [a, b] = await Promise.all([
    HolderClient.connect(socket, { spawn: true, idleExitMs: 500, stderr: { file: log } }),
    HolderClient.connect(socket, { spawn: true, idleExitMs: 500, stderr: { file: log } }),
  ]);
  let pid = 0;
  try {
    const [sa, sb] = await Promise.all([a.status(), b.status()]);
    pid = sa.pid;
    assert.equal(sa.pid, sb.pid);
    // Both connected; the second may still wait in the listen backlog when the first asks.
    let clients = sa.clients;
    for (let i = 0; i < 100 && clients < 2; i++) {
      await sleep(20);
      clients = (await a.status()).clients;
    }
    assert.equal(clients, 2);
    assert.ok(a.spawned || b.spawned);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    assert.equal(Number(fields[3]), pid, 'session leader (setsid)');
  } finally {
    a.close();
    b.close();
  }
  // It goes by itself: nothing held, nobody connected.
  await waitFor(() => !alive(pid), 5000, 'the spawned holder to exit idle');
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string });
  assert.ok(lines.some((l) => l.event === 'holder.start'));
  assert.equal(lines.at(-1)?.event, 'holder.exit');
  dir.remove();
});

test('heartbeats come from a native thread: a JavaScript thread blocked 1.5 s does not start the watchdog; stopped heartbeats do', { skip }, async () => {
  const dir = tempDir();
  const holder = await started(startHolder(path.join(dir.path, 'h.sock')));
  const client = await HolderClient.connect(holder.socket);
  try {
    client.startHeartbeat(300);
    await holder.waitLog('agent.heartbeat');
    blockFor(1500);
    const busy = await client.status();
    assert.equal(busy.watchdog, false);
    assert.ok(busy.silentMs < 300, `last heartbeat ${busy.silentMs} ms ago`);
    assert.equal(holder.logs.filter((l) => l.event === 'watchdog.start').length, 0);

    client.stopHeartbeat();
    const start = await holder.waitLog('watchdog.start', 3000);
    assert.equal(start.why, 'stopped');
    assert.ok((start.silentMs as number) >= 300 && (start.silentMs as number) < 1500, `after ${String(start.silentMs)} ms`);
    assert.equal((await client.status()).watchdog, true);
    client.startHeartbeat(300);
    assert.equal((await holder.waitLog('watchdog.stop', 3000)).why, 'heartbeat');
    assert.equal((await client.status()).watchdog, false);

    // An agent gone without bye: "absent".
    client.close();
    assert.equal((await holder.waitLog('watchdog.start', 3000, (l) => l.why === 'absent')).why, 'absent');
  } finally {
    client.close();
    await holder.stop();
    dir.remove();
  }
});

test('bye: the holder logs a handover (not a lost agent) and keeps every entry', { skip }, async () => {
  const dir = tempDir();
  const holder = await started(startHolder(path.join(dir.path, 'h.sock')));
  const fd = fs.openSync('/dev/null', 'r');
  try {
    const old = await HolderClient.connect(holder.socket);
    await old.put('m', { v: 1 }, [fd]);
    old.startHeartbeat(10_000);
    await old.bye();
    assert.equal((await holder.waitLog('client.disconnect')).bye, true);
    const next = await HolderClient.connect(holder.socket);
    const entries = await next.list();
    assert.deepEqual(entries.map((e) => e.id), ['m']);
    for (const e of entries) for (const f of e.fds) closeFd(f);
    next.close();
    assert.throws(() => next.startHeartbeat(1000), (e: unknown) => isStrataError(e) && e.errnoName === 'EBADF');
  } finally {
    fs.closeSync(fd);
    await holder.stop();
    dir.remove();
  }
});

test('a holder an agent spawned outlives the agent and its whole process group (SIGKILL), with what it held', { skip }, async () => {
  const dir = tempDir();
  const socket = path.join(dir.path, 'holder.sock');
  const file = path.join(dir.path, 'kept');
  fs.writeFileSync(file, 'kept');
  const agentScript = `
    const fs = require('node:fs');
    const { HolderClient } = require(${JSON.stringify(path.join(__dirname, 'holder-client.js'))});
    (async () => {
      const c = await HolderClient.connect(process.argv[1], { spawn: true, stderr: 'ignore' });
      await c.put('kept', { by: process.pid }, [fs.openSync(process.argv[2], 'r')]);
      c.startHeartbeat(60_000);
      console.log((await c.status()).pid);
      setInterval(() => undefined, 1000);
    })();
  `;
  const { spawn } = await import('node:child_process');
  // A process group of its own, as a supervisor would kill it: agent and everything it started.
  const agent = spawn(process.execPath, ['-e', agentScript, '--', socket, file], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  agent.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  let holderPid = 0;
  try {
    await waitFor(() => /^\d+\n/.test(out), 15_000, 'the agent to start its holder');
    holderPid = Number(out.trim());
    assert.notEqual(holderPid, agent.pid);
    process.kill(-(agent.pid as number), 'SIGKILL');
    await within(new Promise((r) => agent.once('exit', r)), 5000, 'the agent to die');
    await sleep(200);
    assert.ok(alive(holderPid), 'the holder is not in the agent\'s process group');
    const successor = await HolderClient.connect(socket);
    const [entry] = await successor.list();
    assert.equal(entry?.id, 'kept');
    assert.equal(entry?.meta.by, agent.pid);
    assert.equal(fs.readlinkSync(`/proc/self/fd/${entry?.fds[0]}`), file);
    for (const fd of entry?.fds ?? []) closeFd(fd);
    successor.close();
  } finally {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
    if (holderPid !== 0 && alive(holderPid)) process.kill(holderPid, 'SIGTERM');
    await waitFor(() => holderPid === 0 || !alive(holderPid), 5000, 'the holder to exit').catch(() => undefined);
    dir.remove();
  }
});

test('a heartbeat of 0 disarms the watchdog: silence then starts nothing', { skip }, async () => {
  const dir = tempDir();
  const holder = await started(startHolder(path.join(dir.path, 'h.sock')));
  const client = await HolderClient.connect(holder.socket);
  try {
    client.startHeartbeat(200);
    await holder.waitLog('agent.heartbeat', 3000, (l) => l.timeoutMs === 200);
    client.startHeartbeat(0);
    await holder.waitLog('agent.heartbeat', 3000, (l) => l.timeoutMs === 0);
    await sleep(800);
    const status = await client.status();
    assert.deepEqual({ timeoutMs: status.timeoutMs, watchdog: status.watchdog }, { timeoutMs: 0, watchdog: false });
    assert.equal(holder.logs.filter((l) => l.event === 'watchdog.start').length, 0);
  } finally {
    client.close();
    await holder.stop();
    dir.remove();
  }
});

test('--idle-exit-ms 0: never exits idle', { skip }, async () => {
  const dir = tempDir();
  const holder = await started(startHolder(path.join(dir.path, 'h.sock'), ['--idle-exit-ms', '0']));
  try {
    const c = await HolderClient.connect(holder.socket);
    c.close();
    await sleep(1200);
    assert.ok(alive(holder.child.pid as number));
    assert.equal(holder.logs.filter((l) => l.event === 'holder.exit').length, 0);
  } finally {
    await holder.stop();
    dir.remove();
  }
});
