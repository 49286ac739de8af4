import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isStrataError } from '@strata/errors';
import { within } from './mount-harness';
import { sdNotify, sdRemoveFds, sdStoreFds } from './sd-notify';
import { bindDatagram, closeFd, receivePacket } from './fd-passing';

/** A stand-in for systemd's notification socket: python binds a unix datagram socket, prints "bound", then each datagram as JSON. */
const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
addr = sys.argv[1]
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
print('bound', flush=True)
for _ in range(int(sys.argv[2])):
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;

const python = spawnSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).stdout.trim();

async function received(where: string, count: number, send: () => void): Promise<string[]> {
  const child = spawn(python, ['-c', LISTENER, where, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        const check = setInterval(() => {
          if (out.startsWith('bound\n')) {
            clearInterval(check);
            resolve();
          } else if (child.exitCode !== null) {
            clearInterval(check);
            reject(new Error(`listener exited ${child.exitCode}`));
          }
        }, 10);
      }),
      10_000,
      'the listener to bind',
    );
    send();
    await within(new Promise((resolve) => child.once('exit', resolve)), 10_000, `${count} datagrams`);
    return out.split('\n').slice(1).filter(Boolean).map((l) => JSON.parse(l) as string);
  } finally {
    child.kill('SIGKILL');
  }
}

test('no $NOTIFY_SOCKET: nothing is sent', () => {
  assert.equal(sdNotify({ READY: 1 }, undefined), false);
  assert.equal(sdNotify({ READY: 1 }, ''), false);
});

test('datagrams reach a socket at a path and in the abstract namespace, one field a line', { skip: python ? false : 'needs python3' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-notify-'));
  try {
    const at = path.join(dir, 'notify');
    assert.deepEqual(await received(at, 2, () => {
      assert.equal(sdNotify({ READY: 1, STATUS: 'serving 2 mounts\nreally', MAINPID: process.pid }, at), true);
      sdNotify({ STOPPING: 1 }, at);
    }), [`READY=1\nSTATUS=serving 2 mounts really\nMAINPID=${process.pid}`, 'STOPPING=1']);
    const abstract = `@strata-notify-test-${process.pid}`;
    assert.deepEqual(await received(abstract, 1, () => sdNotify({ READY: 1 }, abstract)), ['READY=1']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a socket nobody listens on, or a relative path: a StrataError with the errno', () => {
  assert.throws(() => sdNotify({ READY: 1 }, path.join(os.tmpdir(), `strata-no-such-notify-${process.pid}`)), (e: unknown) => isStrataError(e) && e.errnoName === 'ENOENT');
  assert.throws(() => sdNotify({ READY: 1 }, 'relative/notify'), (e: unknown) => isStrataError(e) && e.errnoName === 'EINVAL');
});

test('FDSTORE: fds reach a fake NOTIFY_SOCKET with FDSTORE=1 and their name; FDSTOREREMOVE names them; a bad name is EINVAL', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fdstore-'));
  const at = path.join(dir, 'notify');
  const sock = bindDatagram(at);
  const file = path.join(dir, 'held');
  fs.writeFileSync(file, 'x');
  const fd = fs.openSync(file, 'r');
  try {
    assert.equal(sdStoreFds('mount-1', [fd, fd], { socketPath: at }), true);
    const stored = await within(receivePacket(sock, { timeoutMs: 5000 }), 10_000, 'the FDSTORE datagram');
    assert.ok(stored);
    assert.equal(stored.bytes.toString(), 'FDSTORE=1\nFDNAME=mount-1');
    assert.equal(stored.fds.length, 2);
    for (const f of stored.fds) {
      assert.equal(fs.readlinkSync(`/proc/self/fd/${f}`), file);
      closeFd(f);
    }
    sdStoreFds('mount-2', [fd], { socketPath: at, poll: false });
    const unpolled = await receivePacket(sock, { timeoutMs: 5000 });
    assert.equal(unpolled?.bytes.toString(), 'FDSTORE=1\nFDNAME=mount-2\nFDPOLL=0');
    for (const f of unpolled?.fds ?? []) closeFd(f);
    assert.equal(sdRemoveFds('mount-1', at), true);
    const removed = await receivePacket(sock, { timeoutMs: 5000 });
    assert.deepEqual({ text: removed?.bytes.toString(), fds: removed?.fds }, { text: 'FDSTOREREMOVE=1\nFDNAME=mount-1', fds: [] });
    for (const bad of ['', 'a:b', 'tab\there', 'x'.repeat(256)]) {
      assert.throws(() => sdStoreFds(bad, [fd], { socketPath: at }), (e: unknown) => isStrataError(e) && e.errnoName === 'EINVAL', bad);
    }
    assert.throws(() => sdStoreFds('none', [], { socketPath: at }), (e: unknown) => isStrataError(e) && e.errnoName === 'EINVAL');
    assert.equal(sdStoreFds('mount-1', [fd], { socketPath: undefined }), false, 'not under systemd');
  } finally {
    fs.closeSync(fd);
    closeFd(sock);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
