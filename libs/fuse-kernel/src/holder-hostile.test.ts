import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isStrataError } from '@strata/errors';
import { HolderClient, holderBinary } from './holder-client';
import { alive, holderSkipReason, startHolder, started, tempDir } from './holder-harness';
import { closeFd, connectSeqpacket, receivePacket, sendPacket } from './fd-passing';
import { encodeMessage, HOLDER_MAGIC } from './holder-protocol';
import { waitFor } from './mount-harness';

const skip = holderSkipReason();
const fdCount = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;

/** xorshift32: the same hostile sequence every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

test('hostile packets (random bytes, lying lengths, unknown types, too many fds, oversized): the holder survives, leaks no fd and keeps serving', { skip }, async () => {
  const dir = tempDir();
  const holder = await started(startHolder(path.join(dir.path, 'h.sock')));
  const pid = holder.child.pid as number;
  const baseline = fdCount(pid);
  const devnull = fs.openSync('/dev/null', 'r');
  const random = rng(0x5eed);
  const int = (n: number): number => Math.floor(random() * n);
  try {
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const sock = connectSeqpacket(holder.socket);
      try {
        let bytes: Buffer;
        let fds: number[] = [];
        switch (int(6)) {
          case 0:
            bytes = Buffer.from(Array.from({ length: int(600) + 1 }, () => int(256)));
            break;
          case 1: {
            // A real header whose lengths disagree with the packet.
            bytes = encodeMessage(1 + int(6), { id: Buffer.from('x'.repeat(int(20))), meta: Buffer.alloc(int(50)) });
            bytes.writeUInt32LE(int(2 ** 32), 8);
            break;
          }
          case 2:
            bytes = encodeMessage(int(256), { flags: int(256), value: int(2 ** 32), id: Buffer.from('fuzz'), meta: Buffer.alloc(int(100)) });
            break;
          case 3:
            // A put with 65..100 fds: over the holder's bound (the kernel carries up to 253).
            bytes = encodeMessage(1, { id: Buffer.from(`fuzz-${i}`) });
            fds = new Array<number>(65 + int(36)).fill(devnull);
            break;
          case 4: {
            // More than a whole message: the holder sees it truncated.
            bytes = Buffer.alloc(70_000 + int(10_000));
            bytes.writeUInt32LE(HOLDER_MAGIC, 0);
            break;
          }
          default:
            // Valid puts and drops, so that the fuzz also churns real entries.
            bytes = encodeMessage(int(2) === 0 ? 1 : 3, { id: Buffer.from(`fuzz-${int(8)}`), meta: Buffer.from('{}') });
            fds = bytes.readUInt8(4) === 1 ? new Array<number>(1 + int(4)).fill(devnull) : [];
        }
        sendPacket(sock, bytes, fds, 2000);
        const reply = await receivePacket(sock, { timeoutMs: 2000, maxFds: 64, maxBytes: 70_000 }).catch(() => null);
        if (reply === null) refused++;
        for (const fd of reply?.fds ?? []) closeFd(fd);
      } finally {
        closeFd(sock);
      }
    }
    assert.ok(alive(pid), 'the holder is alive');
    assert.ok(refused > 50, `garbage got the connection closed (${refused} times)`);
    const client = await HolderClient.connect(holder.socket);
    const entries = await client.list();
    for (const e of entries) {
      for (const fd of e.fds) closeFd(fd);
      assert.equal(await client.drop(e.id), true);
    }
    await waitFor(() => fdCount(pid) === baseline + 1, 5000, `the holder's fds back to ${baseline} + 1 client (now ${fdCount(pid)})`);
    assert.equal((await client.status()).entries, 0);
    client.close();
  } finally {
    fs.closeSync(devnull);
    await holder.stop();
    dir.remove();
  }
});

test('at most 16 clients at once: the 17th is hung up on, and a slot freed is usable again', { skip }, async () => {
  const dir = tempDir();
  const holder = await started(startHolder(path.join(dir.path, 'h.sock')));
  const clients: HolderClient[] = [];
  try {
    for (let i = 0; i < 16; i++) clients.push(await HolderClient.connect(holder.socket));
    await Promise.all(clients.map((c) => c.status()));
    const extra = await HolderClient.connect(holder.socket);
    await assert.rejects(extra.status(), (e: unknown) => isStrataError(e) && /closed the connection|Broken pipe|reset/i.test(e.message));
    extra.close();
    assert.equal((await holder.waitLog('client.refused')).why, 'too many clients');
    clients.pop()?.close();
    await waitFor(() => holder.logs.filter((l) => l.event === 'client.disconnect').length >= 1, 5000, 'the disconnect');
    const again = await HolderClient.connect(holder.socket);
    assert.equal((await again.status()).clients, 16);
    again.close();
  } finally {
    for (const c of clients) c.close();
    await holder.stop();
    dir.remove();
  }
});

test('--daemon returns once the holder listens; the daemon is a session leader of its own', { skip }, async () => {
  const dir = tempDir();
  const socket = path.join(dir.path, 'h.sock');
  let pid = 0;
  try {
    // Its stderr is a file: a pipe would keep spawnSync waiting for the daemon's end.
    const log = fs.openSync(path.join(dir.path, 'log'), 'a');
    const r = spawnSync(holderBinary(), ['--socket', socket, '--daemon', '--idle-exit-ms', '1000'], { timeout: 15_000, stdio: ['ignore', 'ignore', log] });
    fs.closeSync(log);
    assert.equal(r.status, 0, fs.readFileSync(path.join(dir.path, 'log'), 'utf8'));
    const client = await HolderClient.connect(socket, { timeoutMs: 100 }); // no retrying needed: it listens already
    pid = (await client.status()).pid;
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    assert.equal(Number(fields[3]), pid, 'session leader');
    assert.notEqual(Number(fields[1]), process.pid, 'not our child');
    client.close();
    await waitFor(() => !alive(pid), 5000, 'the idle daemon to exit');
  } finally {
    if (pid !== 0 && alive(pid)) process.kill(pid, 'SIGTERM');
    dir.remove();
  }
});
