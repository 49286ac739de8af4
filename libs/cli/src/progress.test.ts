import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandContext } from './command-context';
import { PROGRESS_INTERVAL_MS, ProgressLine, eraseProgress, type ProgressTimers } from './progress';

/** A clock and one repeating timer driven by hand. */
function fakeTimers(): ProgressTimers & { advance(ms: number): void; running(): number } {
  let now = 1_000;
  const timers = new Map<number, { every: number; next: number; fn: () => void }>();
  let ids = 0;
  return {
    now: () => now,
    every: (ms, fn) => {
      const id = ++ids;
      timers.set(id, { every: ms, next: now + ms, fn });
      return () => timers.delete(id);
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = [...timers.values()].filter((t) => t.next <= end).sort((a, b) => a.next - b.next)[0];
        if (!due) break;
        now = due.next;
        due.next += due.every;
        due.fn();
      }
      now = end;
    },
    running: () => timers.size,
  };
}

function fakeTerminal(columns = 80): { write(s: string): void; columns: number; writes: string[] } {
  const writes: string[] = [];
  return { writes, columns, write: (s) => void writes.push(s) };
}

test('nothing is drawn before the first interval; then at most once per interval, erased at the end', () => {
  const t = fakeTimers();
  const tty = fakeTerminal();
  const p = new ProgressLine(tty, 'walk', ['entry', 'entries'], t);
  p.add(5);
  t.advance(PROGRESS_INTERVAL_MS - 1);
  assert.deepEqual(tty.writes, [], 'a command that ends at once draws nothing');
  for (let i = 0; i < 1000; i++) p.add(1);
  t.advance(1);
  assert.deepEqual(tty.writes, ['\r\x1b[Kwalk: 1,005 entries, 0.1 s']);
  t.advance(1000);
  assert.ok(tty.writes.length <= 11, `${tty.writes.length} frames in 1.1 s`);
  assert.equal(tty.writes.at(-1), '\r\x1b[Kwalk: 1,005 entries, 1.1 s');
  p.done();
  assert.equal(tty.writes.at(-1), '\r\x1b[K');
  assert.equal(t.running(), 0, 'the timer is gone');
  p.done();
  assert.equal(tty.writes.at(-1), '\r\x1b[K', 'done twice erases once');
  assert.equal(tty.writes.filter((w) => w === '\r\x1b[K').length, 1);
});

test('singular, and cut to the terminal width', () => {
  const t = fakeTimers();
  const tty = fakeTerminal(12);
  const p = new ProgressLine(tty, 'diff', ['change', 'changes'], t);
  p.add(1);
  assert.equal(p.text(), 'diff: 1 change, 0.0 s');
  t.advance(PROGRESS_INTERVAL_MS);
  assert.equal(tty.writes[0], '\r\x1b[Kdiff: 1 cha');
  eraseProgress();
  assert.equal(tty.writes.at(-1), '\r\x1b[K');
  assert.equal(t.running(), 0);
});

test('output to the same terminal takes the line down first; none without a terminal or with --no-progress', async () => {
  const t = fakeTimers();
  const tty = fakeTerminal();
  const screen: string[] = [];
  const io = { out: (s: string | Buffer) => void screen.push(`${tty.writes.length}:${String(s)}`), progress: tty, outIsTerminal: true, timers: t };
  const ctx = commandContext(io, () => assert.fail('no client'));
  await ctx.withProgress({}, 'walk', ['entry', 'entries'], async (p) => {
    assert.ok(p);
    p.add(3);
    t.advance(PROGRESS_INTERVAL_MS);
    await ctx.out('line\n');
  });
  // The frame, then the erase, then the output line.
  assert.deepEqual(tty.writes, ['\r\x1b[Kwalk: 3 entries, 0.1 s', '\r\x1b[K']);
  assert.deepEqual(screen, ['2:line\n']);
  await ctx.withProgress({ progress: false }, 'walk', ['entry', 'entries'], async (p) => assert.equal(p, undefined));
  const plain = commandContext({ out: () => undefined }, () => assert.fail('no client'));
  await plain.withProgress({}, 'walk', ['entry', 'entries'], async (p) => assert.equal(p, undefined));
});
