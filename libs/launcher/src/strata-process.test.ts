import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, isStrataError } from '@strata/errors';
import { StrataProcess, startStrata, type LogLine } from './index';

/** A stand-in for bin/strata: argv is [role, mode]; it writes pino-like lines on stderr. */
const FAKE = `
const [, mode] = process.argv.slice(2);
const log = (o) => process.stderr.write(JSON.stringify({ level: 'info', pid: process.pid, ...o }) + '\\n');
const stay = () => setInterval(() => {}, 1000);
if (mode === 'ready') {
  process.stderr.write('not json: a warning from somewhere\\n');
  log({ event: 'fake.starting' });
  process.on('SIGTERM', () => { log({ event: 'fake.bye' }); process.exit(0); });
  setTimeout(() => log({ event: 'fake.ready', port: 4321 }), 50);
  stay();
} else if (mode === 'never') {
  process.on('SIGTERM', () => log({ event: 'fake.ignoring-sigterm' }));
  log({ event: 'fake.starting' });
  stay();
} else if (mode === 'exit') {
  log({ event: 'fake.starting' });
  process.stderr.write('boom: no store at /nowhere\\n');
  process.exit(3);
} else if (mode === 'ready-and-exit') {
  log({ event: 'fake.ready', port: 1 });
  process.exit(0);
}
`;

let dir: string;
let bin: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-launcher-'));
  bin = path.join(dir, 'fake-strata.js');
  fs.writeFileSync(bin, FAKE);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

test('start resolves with the ready line; every line reaches the callback and the log file; SIGTERM stops it', async () => {
  const logFile = path.join(dir, 'ready.log');
  const seen: LogLine[] = [];
  const { process: p, ready } = await startStrata({ role: 'resolver', args: ['ready'], bin, logFile, onLine: (l) => seen.push(l), readyEvent: 'fake.ready', readyTimeoutMs: 10_000 });
  assert.equal(ready.port, 4321);
  assert.ok(p.running());
  assert.deepEqual(seen[0], { event: 'non-json', text: 'not json: a warning from somewhere' });
  assert.deepEqual(
    seen.slice(1).map((l) => l.event),
    ['fake.starting', 'fake.ready'],
  );
  // A wait that starts after the line was logged still sees it.
  assert.equal((await p.waitForEvent('fake.starting', 1)).event, 'fake.starting');
  assert.deepEqual(await p.stop(), { code: 0, signal: null });
  assert.ok(!p.running());
  assert.deepEqual(await p.stop(), { code: 0, signal: null }, 'stopping again reports the same exit');
  // stop() returns once the log file holds everything the process wrote.
  const logged = fs.readFileSync(logFile, 'utf8').trim().split('\n');
  assert.equal(logged[0], 'not json: a warning from somewhere');
  assert.deepEqual(
    logged.slice(1).map((l) => (JSON.parse(l) as LogLine).event),
    ['fake.starting', 'fake.ready', 'fake.bye'],
  );
});

test('a process that is never ready is killed within the timeout and the error carries its last lines', async () => {
  let pid = 0;
  const t0 = Date.now();
  await assert.rejects(
    startStrata({ role: 'agent', args: ['never'], bin, onLine: (l) => (pid = Number(l.pid)), readyEvent: 'fake.ready', readyTimeoutMs: 2_000 }),
    (err: unknown) => {
      assert.ok(isStrataError(err));
      assert.equal(err.errno, Errno.ETIMEDOUT);
      assert.match(err.message, /^strata agent logged no fake\.ready within 2000 ms; last lines:\n.*"event":"fake\.starting"/);
      return true;
    },
  );
  assert.ok(Date.now() - t0 < 8_000, 'bounded by the timeout, not by the child');
  assert.ok(pid > 0);
  assert.ok(gone(pid), 'the child was killed and reaped');
});

test('a process that exits before it is ready rejects with its exit status and output', async () => {
  await assert.rejects(startStrata({ role: 'resolver', args: ['exit'], bin, readyEvent: 'fake.ready', readyTimeoutMs: 10_000 }), (err: unknown) => {
    assert.ok(isStrataError(err));
    assert.equal(err.errno, Errno.EIO);
    assert.match(err.message, /^strata resolver exited with 3 before fake\.ready; last lines:\n/);
    assert.match(err.message, /boom: no store at \/nowhere$/);
    return true;
  });
});

test('a ready line written just before exiting still counts', async () => {
  const p = new StrataProcess({ role: 'resolver', args: ['ready-and-exit'], bin });
  assert.equal((await p.waitForEvent('fake.ready', 10_000)).port, 1);
  assert.deepEqual(await p.exit, { code: 0, signal: null });
});

test('stop escalates to SIGKILL when SIGTERM is ignored past the grace', async () => {
  const p = new StrataProcess({ role: 'agent', args: ['never'], bin });
  await p.waitForEvent('fake.starting', 10_000);
  const t0 = Date.now();
  assert.deepEqual(await p.stop('SIGTERM', 300), { code: null, signal: 'SIGKILL' });
  assert.ok(Date.now() - t0 < 5_000);
  await assert.rejects(p.waitForEvent('fake.ready', 10_000), /killed by SIGKILL before fake\.ready/);
});

test('a log file that cannot be opened fails the launch before anything is spawned', () => {
  assert.throws(
    () => new StrataProcess({ role: 'resolver', args: ['ready'], bin, logFile: path.join(dir, 'no-such-dir', 'x.log') }),
    (err: unknown) => isStrataError(err) && err.errno === Errno.ENOENT && /^log file .*x\.log: ENOENT$/.test(err.message),
  );
});
