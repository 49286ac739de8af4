import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isStrataError } from '@strata/errors';
import { listenFds } from './systemd-fds';

test('LISTEN_* variables: fds from 3 with their names, only for the process LISTEN_PID names', () => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: String(process.pid), LISTEN_FDS: '3', LISTEN_FDNAMES: 'mount-a:mount-b:stored' };
  assert.deepEqual(listenFds({ env, unset: false }), [
    { name: 'mount-a', fd: 3 },
    { name: 'mount-b', fd: 4 },
    { name: 'stored', fd: 5 },
  ]);
  assert.equal(env.LISTEN_FDS, '3', 'unset: false leaves the environment');
  assert.deepEqual(listenFds({ env: { LISTEN_PID: String(process.pid), LISTEN_FDS: '2' }, unset: false }), [
    { name: 'unknown', fd: 3 },
    { name: 'unknown', fd: 4 },
  ]);
  assert.deepEqual(listenFds({ env: { LISTEN_PID: String(process.pid + 1), LISTEN_FDS: '2' }, unset: false }), []);
  assert.deepEqual(listenFds({ env: {}, unset: false }), []);
  assert.deepEqual(listenFds({ env: { LISTEN_PID: String(process.pid), LISTEN_FDS: '0' }, unset: false }), []);
  for (const bad of [
    { LISTEN_PID: 'self', LISTEN_FDS: '1' },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: '-1' },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: '1e9' },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: '2', LISTEN_FDNAMES: 'one' },
  ]) {
    assert.throws(() => listenFds({ env: { ...bad }, unset: false }), (e: unknown) => isStrataError(e) && e.errnoName === 'EINVAL', JSON.stringify(bad));
  }
});

test('a process started as systemd starts it (LISTEN_PID=$$, fds at 3 and 4) reads its files there, and no child inherits them', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-listen-'));
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  fs.writeFileSync(a, 'first');
  fs.writeFileSync(b, 'second');
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  const script = `
    const fs = require('node:fs');
    const { listenFds } = require(${JSON.stringify(path.join(__dirname, 'systemd-fds.js'))});
    const got = listenFds();
    const out = got.map((f) => ({ ...f, text: fs.readFileSync('/proc/self/fd/' + f.fd, 'utf8') }));
    const seen = require('node:child_process').spawnSync('sh', ['-c', 'for n in 3 4; do test -e /proc/$$/fd/$n && echo $n; done'], { encoding: 'utf8' }).stdout;
    console.log(JSON.stringify({ out, env: process.env.LISTEN_FDS ?? null, childSees: seen.split('\\n').filter(Boolean).map(Number) }));
  `;
  try {
    // As systemd does: the variables name the very process that reads them (sh's pid survives exec).
    const { spawn } = await import('node:child_process');
    const child = spawn('sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=a:b exec "$0" -e "$1"', process.execPath, script], {
      stdio: ['ignore', 'pipe', 'inherit', fa, fb],
    });
    let out = '';
    assert.ok(child.stdout);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    assert.equal(status, 0);
    assert.deepEqual(JSON.parse(out), {
      out: [
        { name: 'a', fd: 3, text: 'first' },
        { name: 'b', fd: 4, text: 'second' },
      ],
      env: null,
      childSees: [],
    });
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
