import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { LogDestination } from './log-destination';

/**
 * A child process that logs through createLogger to its stderr, a pipe
 * this test reads only when it chooses to; the child reports on stdout.
 */
const LOGGER = path.join(__dirname, 'logger.js');
const SHUTDOWN = path.join(__dirname, 'shutdown.js');
const PAD = 'x'.repeat(1000);

type Child = ChildProcessByStdio<null, Readable, Readable>;

function child(script: string): Child {
  const prelude = `const { createLogger } = require(${JSON.stringify(LOGGER)}); const { onShutdown } = require(${JSON.stringify(SHUTDOWN)}); const PAD = ${JSON.stringify(PAD)};\n`;
  return spawn(process.execPath, ['-e', prelude + script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STRATA_EXIT_WITH_PARENT: '' } });
}

/** The first line the child writes on stdout, as JSON; bounded. */
function report(c: Child, timeoutMs: number): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      c.kill('SIGKILL');
      reject(new Error(`no report within ${timeoutMs} ms (the child is blocked?)`));
    }, timeoutMs);
    c.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl === -1) return;
      clearTimeout(timer);
      resolve(JSON.parse(text.slice(0, nl)) as Record<string, number>);
    });
    c.once('exit', () => reject(new Error(`the child exited before reporting: ${text}`)));
  });
}

/** Reads the child's stderr from now on: its JSON lines, until `done` says so or the pipe closes; bounded. */
function readLines(c: Child, done: (lines: Record<string, unknown>[]) => boolean, timeoutMs: number): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const lines: Record<string, unknown>[] = [];
    let rest = '';
    const timer = setTimeout(() => reject(new Error(`stderr: ${lines.length} lines within ${timeoutMs} ms, not done`)), timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      c.stderr.removeAllListeners('data');
      resolve(lines);
    };
    c.stderr.on('data', (chunk: Buffer) => {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      for (const p of parts) if (p !== '') lines.push(JSON.parse(p) as Record<string, unknown>);
      if (done(lines)) finish();
    });
    c.stderr.once('end', finish);
  });
}

const exited = (c: Child): Promise<number | null> => new Promise((resolve) => (c.exitCode !== null ? resolve(c.exitCode) : c.once('exit', (code) => resolve(code))));

test('a reader that stops reading: logging never blocks the event loop, lines beyond the buffer are dropped, counted and reported once it reads again', async () => {
  // 4000 lines of 1 KB against a 256 KiB buffer and a pipe nobody reads: a blocking logger would hang on the first full pipe.
  const c = child(`
    const log = createLogger({ service: 't', level: 'info', bufferBytes: 256 << 10 });
    let worst = 0; let seq = 0;
    const started = Date.now();
    const batch = () => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 100; i++) log.info({ seq: seq++, pad: PAD }, 'line');
      worst = Math.max(worst, Number(process.hrtime.bigint() - t0) / 1e6);
      if (seq < 4000) return setImmediate(batch);
      process.stdout.write(JSON.stringify({ logged: seq, worstBatchMs: worst, totalMs: Date.now() - started }) + '\\n');
    };
    batch();
    process.on('SIGTERM', () => process.exit(0));
    setTimeout(() => undefined, 30000);
  `);
  try {
    const r = await report(c, 20_000);
    assert.equal(r.logged, 4000);
    // A batch of 100 lines is formatting only: no wait on the pipe (generous for a loaded 2-core machine).
    assert.ok(r.worstBatchMs < 500, `a batch of 100 lines took ${r.worstBatchMs} ms`);
    const lines = await readLines(c, (ls) => ls.some((l) => l.event === 'log.dropped'), 20_000);
    const seqs = lines.filter((l) => l.msg === 'line').map((l) => l.seq as number);
    const report_ = lines.find((l) => l.event === 'log.dropped');
    assert.ok(report_, 'a log.dropped line');
    assert.equal(report_.level, 'warn');
    const dropped = report_.lines as number;
    assert.ok(dropped > 0 && dropped < 4000, `dropped ${dropped}`);
    // Nothing lost silently, nothing reordered: what arrived plus what was counted is what was logged.
    assert.equal(seqs.length + dropped, 4000);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], 'in order');
    assert.equal(seqs[0], 0, 'the first lines are kept (the later ones are dropped)');
    assert.ok(lines.indexOf(report_) > lines.findIndex((l) => l.seq === seqs.at(-1)), 'reported after the lines held');
  } finally {
    c.stderr.resume();
    c.kill('SIGTERM');
    await exited(c);
  }
});

test('a SIGTERM stop while the reader is behind still leaves every line, in order', async () => {
  const c = child(`
    const log = createLogger({ service: 't', level: 'info' });
    onShutdown(log, async () => undefined);
    for (let seq = 0; seq < 3000; seq++) log.info({ seq, pad: PAD }, 'line');
    process.stdout.write(JSON.stringify({ pending: 1 }) + '\\n');
    setTimeout(() => undefined, 30000);
  `);
  try {
    await report(c, 20_000);
    // 3 MB logged, most of it held by the child: stopped now, its stderr read only afterwards (within the exit flush's wait).
    c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const lines = await readLines(c, () => false, 20_000);
    const seqs = lines.filter((l) => l.msg === 'line').map((l) => l.seq as number);
    assert.deepEqual(seqs, Array.from({ length: 3000 }, (_, i) => i));
    assert.deepEqual(
      lines.filter((l) => typeof l.event === 'string').map((l) => l.event),
      ['shutdown.begin', 'shutdown.done'],
    );
    assert.equal(await exited(c), 0);
  } finally {
    c.kill('SIGKILL');
  }
});

test('a process that simply ends (nothing left to do) with lines still held writes them all first', async () => {
  const c = child(`
    const log = createLogger({ service: 't', level: 'info' });
    for (let seq = 0; seq < 3000; seq++) log.info({ seq, pad: PAD }, 'line');
    process.stdout.write(JSON.stringify({ logged: 3000 }) + '\\n');
  `);
  await report(c, 20_000);
  await new Promise((r) => setTimeout(r, 300));
  const lines = await readLines(c, () => false, 20_000);
  assert.deepEqual(
    lines.map((l) => l.seq),
    Array.from({ length: 3000 }, (_, i) => i),
  );
  assert.equal(await exited(c), 0);
});

test('lines dropped just before an exit are still reported, in the last line', async () => {
  const c = child(`
    const log = createLogger({ service: 't', level: 'info', bufferBytes: 64 << 10 });
    for (let seq = 0; seq < 3000; seq++) log.info({ seq, pad: PAD }, 'line');
    process.stdout.write(JSON.stringify({ logged: 3000 }) + '\\n');
    process.exit(0);
  `);
  await report(c, 20_000);
  await new Promise((r) => setTimeout(r, 300));
  const lines = await readLines(c, () => false, 20_000);
  const last = lines.at(-1);
  assert.equal(last?.event, 'log.dropped');
  const seqs = lines.filter((l) => l.msg === 'line').map((l) => l.seq as number);
  assert.ok((last.lines as number) > 0);
  assert.equal(seqs.length + (last.lines as number), 3000);
  assert.equal(await exited(c), 0);
});

test('a reader that went away (EPIPE): the process goes on logging, unharmed', async () => {
  const c = child(`
    const log = createLogger({ service: 't', level: 'info' });
    log.info('first');
    setTimeout(() => {
      for (let i = 0; i < 2000; i++) log.info({ i, pad: PAD }, 'after');
      process.stdout.write(JSON.stringify({ alive: 1 }) + '\\n');
    }, 300);
  `);
  c.stderr.destroy();
  const r = await report(c, 20_000);
  assert.equal(r.alive, 1);
  assert.equal(await exited(c), 0);
});

test('a regular file gets each line before write() returns, as a synchronous logger', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-logdest-'));
  try {
    const fd = fs.openSync(path.join(dir, 'log'), 'w');
    const d = new LogDestination({ fd });
    for (let i = 0; i < 100; i++) {
      d.write(`${i}\n`);
      assert.equal(fs.readFileSync(path.join(dir, 'log'), 'utf8').split('\n').length - 1, i + 1);
    }
    assert.equal(d.pending, 0);
    fs.closeSync(fd);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
