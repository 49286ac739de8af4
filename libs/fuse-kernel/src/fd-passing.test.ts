import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isStrataError } from '@strata/errors';
import { bindDatagram, closeFd, connectSeqpacket, receivePacket, sendPacket, setCloexec } from './fd-passing';
import { sdNotify } from './sd-notify';
import { within } from './mount-harness';

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

function withDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fdpass-'));
  return work(dir).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

test('fds sent with a datagram arrive as new descriptors of the same open files', () =>
  withDir(async (dir) => {
    const sock = bindDatagram(path.join(dir, 'in'));
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, 'held bytes');
    const a = fs.openSync(file, 'r');
    const b = fs.openSync('/dev/null', 'r');
    try {
      sdNotify({ X: 1 }, path.join(dir, 'in'), [a, b, a]);
      const got = await within(receivePacket(sock, { timeoutMs: 5000 }), 10_000, 'the packet');
      assert.ok(got);
      assert.equal(got.bytes.toString(), 'X=1');
      assert.equal(got.fds.length, 3);
      assert.ok(got.fds.every((fd) => fd !== a && fd !== b));
      assert.equal(fs.readlinkSync(`/proc/self/fd/${got.fds[0]}`), file);
      assert.equal(fs.readlinkSync(`/proc/self/fd/${got.fds[1]}`), '/dev/null');
      // Same open file: the offset is shared with the sender's descriptor.
      const buf = Buffer.alloc(5);
      fs.readSync(got.fds[0] as number, buf, 0, 5, null);
      assert.equal(buf.toString(), 'held ');
      fs.readSync(a, buf, 0, 5, null);
      assert.equal(buf.toString(), 'bytes');
      // Close-on-exec, so no child inherits them.
      const flags = /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${got.fds[0]}`, 'utf8'))?.[1] ?? '0';
      assert.ok((parseInt(flags, 8) & 0o2000000) !== 0, `flags ${flags}`);
      for (const fd of got.fds) closeFd(fd);
    } finally {
      fs.closeSync(a);
      fs.closeSync(b);
      closeFd(sock);
    }
  }));

test('a receive waits no longer than its timeout (ETIMEDOUT); more fds than allowed are refused and closed (EMSGSIZE)', () =>
  withDir(async (dir) => {
    const at = path.join(dir, 'in');
    const sock = bindDatagram(at);
    try {
      const started = Date.now();
      await assert.rejects(receivePacket(sock, { timeoutMs: 200 }), (e: unknown) => isStrataError(e) && e.errnoName === 'ETIMEDOUT');
      const waited = Date.now() - started;
      assert.ok(waited >= 150 && waited < 3000, `waited ${waited} ms`);

      const before = openFds();
      const f = fs.openSync('/dev/null', 'r');
      sdNotify({ MANY: 1 }, at, [f, f, f, f]);
      fs.closeSync(f);
      await assert.rejects(receivePacket(sock, { maxFds: 2 }), (e: unknown) => isStrataError(e) && e.errno === 90 /* EMSGSIZE */);
      assert.equal(openFds(), before, 'the refused packet left no descriptor behind');
      sdNotify({ BIG: 'x'.repeat(2000) }, at);
      await assert.rejects(receivePacket(sock, { maxBytes: 100 }), (e: unknown) => isStrataError(e) && e.errno === 90 /* EMSGSIZE */);
    } finally {
      closeFd(sock);
    }
  }));

test('connecting where nobody listens: ENOENT, or ECONNREFUSED for a socket file without a listener; bad arguments are EINVAL', () =>
  withDir(async (dir) => {
    assert.throws(() => connectSeqpacket(path.join(dir, 'none')), (e: unknown) => isStrataError(e) && e.errnoName === 'ENOENT');
    const dead = path.join(dir, 'dead');
    closeFd(bindDatagram(dead)); // a socket file nobody listens on
    assert.throws(() => connectSeqpacket(dead), (e: unknown) => isStrataError(e) && e.errno === 111);
    assert.throws(() => connectSeqpacket('relative'), (e: unknown) => isStrataError(e) && e.errnoName === 'EINVAL');
    assert.throws(() => sendPacket(-1, Buffer.alloc(1)), (e: unknown) => isStrataError(e) && e.errnoName === 'EINVAL');
    assert.throws(() => closeFd(1.5), (e: unknown) => isStrataError(e) && e.errnoName === 'EINVAL');
    assert.throws(() => setCloexec(987654), (e: unknown) => isStrataError(e) && e.errnoName === 'EBADF');
  }));
