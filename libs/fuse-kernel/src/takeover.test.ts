/**
 * Takeover (issue 27) through real mounts: a session hands its /dev/fuse fds
 * to a holder (here a sleeping child process given the very open files as
 * extra stdio), releases, and a new session adopts the connection from the
 * holder's copies (taken back with pidfd_getfd) while a child keeps reading
 * — including a read the first session had taken and never answered. And a
 * handler that never answers, or a JavaScript thread that is stuck, meets
 * requestTimeoutMs: EIO from native code within the bound.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess, ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStrataError } from '@strata/errors';
import { HolderClient, holderBinary } from './holder-client';
import { addon } from './native';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { blockFor, cleanUp, runNode, skipReason, tempMountpoint, waitFor, within } from './mount-harness';
import type { FuseHandlers, SessionHandover } from './types';

const NAMES = 40;

/**
 * Reads argv[1]/data with O_DIRECT in 64 KiB requests (each a READ), lstats
 * a name and lists the directory now and then, until a line arrives on stdin;
 * then prints a JSON summary. "ok N" every 10 rounds says it is progressing.
 */
const READER = `const fs = require('fs'); const crypto = require('crypto');
  const [dir, want, names] = process.argv.slice(1);
  let stop = false; process.stdin.on('data', () => { stop = true; });
  const s = { rounds: 0, errors: [], mismatches: 0, longestMs: 0 };
  const timed = (f) => { const t = Date.now(); try { return f(); } finally { s.longestMs = Math.max(s.longestMs, Date.now() - t); } };
  (async () => {
    while (!stop) {
      try {
        const h = crypto.createHash('sha256'); const b = Buffer.alloc(65536);
        const fd = fs.openSync(dir + '/data', fs.constants.O_RDONLY | fs.constants.O_DIRECT);
        try {
          for (let pos = 0; ; ) { const n = timed(() => fs.readSync(fd, b, 0, b.length, pos)); if (n === 0) break; h.update(b.subarray(0, n)); pos += n; }
        } finally { fs.closeSync(fd); }
        if (h.digest('hex') !== want) s.mismatches++;
        timed(() => fs.lstatSync(dir + '/n' + (s.rounds % Number(names))));
        if (s.rounds % 10 === 0 && timed(() => fs.readdirSync(dir)).length !== Number(names) + 1) s.mismatches++;
      } catch (e) { s.errors.push(e.code || String(e)); }
      s.rounds++;
      if (s.rounds % 10 === 0) process.stdout.write('ok ' + s.rounds + '\\n');
      await new Promise((r) => setImmediate(r));
    }
    process.stdout.write('summary ' + JSON.stringify(s) + '\\n', () => process.exit(0));
  })();`;

class Reader {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  private out = '';

  constructor(dir: string, want: string) {
    this.child = spawn(process.execPath, ['-e', READER, '--', dir, want, String(NAMES)]);
    this.child.stdout.on('data', (b: Buffer) => (this.out += b.toString()));
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
  }

  get rounds(): number {
    const all = [...this.out.matchAll(/ok (\d+)/g)];
    return all.length ? Number(all[all.length - 1]?.[1]) : 0;
  }

  async finish(): Promise<{ rounds: number; errors: string[]; mismatches: number; longestMs: number }> {
    this.child.stdin.write('stop\n');
    try {
      await within(this.exited, 20_000, 'the reader to stop');
    } catch (err) {
      let stack = '';
      try {
        stack = readFileSync(`/proc/${this.child.pid}/stack`, 'utf8');
      } catch {
        // gone meanwhile
      }
      throw new Error(`${(err as Error).message}; reader said: ${this.out.slice(-500)}; kernel stack: ${stack}`, { cause: err });
    }
    const m = /summary (.*)/.exec(this.out);
    assert.ok(m, `no summary from the reader: ${this.out}`);
    return JSON.parse(m[1] as string) as { rounds: number; errors: string[]; mismatches: number; longestMs: number };
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

/** A holder stand-in: a sleeping child given the fds (the same open files) as its fds 3, 4, ... */
function holdFds(fds: readonly number[]): Promise<ChildProcess> {
  const child = spawn('sleep', ['120'], { stdio: ['ignore', 'ignore', 'ignore', ...fds] });
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(child));
    child.once('error', reject);
  });
}

/** The holder's copies, back in this process (pidfd_getfd: the same open files). */
function takeBack(holder: ChildProcess, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(addon().takeFd(holder.pid as number, 3 + i));
  return out;
}

function toyWithData(): { toy: ToyFs; data: Buffer; want: string; inos: bigint[] } {
  const toy = new ToyFs(1n);
  const data = randomBytes(512 * 1024 + 777);
  toy.file(1n, 'data', data);
  const inos: bigint[] = [];
  for (let i = 0; i < NAMES; i++) inos.push(toy.file(1n, `n${i}`, Buffer.from(`name ${i}\n`)).ino);
  return { toy, data, want: createHash('sha256').update(data).digest('hex'), inos };
}

describe('takeover: release() and FuseSession.adopt()', { skip: skipReason() }, () => {
  let first: FuseSession | undefined;
  let second: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  let holder: ChildProcess | undefined;
  let reader: Reader | undefined;
  const opened: number[] = [];

  afterEach(async () => {
    reader?.kill();
    holder?.kill('SIGKILL');
    for (const fd of opened.splice(0)) closeSync(fd);
    await cleanUp(second, undefined);
    await cleanUp(first, mnt);
    first = second = undefined;
    mnt = undefined;
    holder = undefined;
    reader = undefined;
  });

  it('a reader in another process sees no error and the same bytes across the handover, the read in flight included', async () => {
    const { toy, want } = toyWithData();
    const base = toy.handlers();
    mnt = tempMountpoint();
    // The 30th READ is taken and never answered by the first session: only
    // the resend can get its caller an answer. Its late answer (wrong bytes)
    // comes after release and must be dropped.
    let reads = 0;
    let stalled: ((b: Buffer) => void) | undefined;
    let stalledAt = -1n;
    const firstHandlers: FuseHandlers = {
      ...base,
      read: (ino, fh, offset, size, caller) => {
        if (++reads === 30) {
          stalledAt = offset;
          return new Promise<Buffer>((resolve) => (stalled = resolve));
        }
        return base.read(ino, fh, offset, size, caller);
      },
    };
    const timeouts = { entryTimeout: 0, attrTimeout: 0, threads: 3 };
    first = await FuseSession.mount(mnt.path, firstHandlers, timeouts);
    reader = new Reader(mnt.path, want);
    await waitFor(() => stalled !== undefined, 15_000, 'the 30th read');
    const roundsBefore = reader.rounds;

    const fds = first.handoverFds();
    assert.equal(fds.length, 3, 'master and two clones');
    const state: SessionHandover = JSON.parse(JSON.stringify(first.handoverState())) as SessionHandover;
    holder = await holdFds(fds);
    await first.release();
    assert.equal(await first.closed, 'released');
    assert.deepEqual(first.handoverFds(), []);
    assert.equal(first.stats().handedOver, 1, 'the stalled read was left to the successor');
    stalled?.(Buffer.alloc(65536, 0x55)); // late: dropped
    await new Promise((r) => setTimeout(r, 300)); // nobody serves: the reader waits in the kernel, nothing fails
    assert.equal(first.stats().lateReplies, 1);

    const taken = takeBack(holder, fds.length);
    opened.push(...taken);
    let firstServed = 0n;
    let firstOffset = -1n;
    const secondHandlers: FuseHandlers = {
      ...base,
      read: (ino, fh, offset, size, caller) => {
        if (firstServed === 0n) {
          firstServed = process.hrtime.bigint();
          firstOffset = offset;
        }
        return base.read(ino, fh, offset, size, caller);
      },
    };
    const t1 = process.hrtime.bigint();
    second = FuseSession.adopt(taken, state, secondHandlers, { ...timeouts, adoptedInos: [] });
    const adoptMs = Number(process.hrtime.bigint() - t1) / 1e6;
    assert.equal(second.stats().resendErrno, 0, 'FUSE_NOTIFY_RESEND taken by the kernel');
    assert.equal(second.connection, first.connection);
    await waitFor(() => reader !== undefined && reader.rounds >= roundsBefore + 30, 20_000, 'the reader to go on');
    // The successor's fds are what a holder must keep from now on.
    assert.equal(second.handoverFds().length, 3);
    assert.equal(second.handoverState().negotiated.generation, 1);
    const summary = await reader.finish();
    reader = undefined;
    assert.deepEqual(summary.errors, []);
    assert.equal(summary.mismatches, 0);
    assert.ok(summary.rounds >= roundsBefore + 30);
    // The reader was blocked in the stalled READ: the first the successor saw was it, resent.
    assert.equal(firstOffset, stalledAt);
    const servedMs = Number(firstServed - t1) / 1e6;
    process.stdout.write(
      `# takeover: adopt() ${adoptMs.toFixed(1)} ms, adopt→the resent read in its handler ${servedMs.toFixed(1)} ms ` +
        `(release→adopt left 300 ms unserved on purpose); reader: ${summary.rounds} rounds, 0 errors, ` +
        `longest single call ${summary.longestMs} ms\n`,
    );
  });

  it('five handovers in a row, each successor handing its own fds on, under a reader', async () => {
    const { toy, want } = toyWithData();
    mnt = tempMountpoint();
    const timeouts = { entryTimeout: 0, attrTimeout: 0, threads: 2 };
    let current = await FuseSession.mount(mnt.path, toy.handlers(), timeouts);
    first = current;
    reader = new Reader(mnt.path, want);
    await waitFor(() => (reader?.rounds ?? 0) >= 10, 15_000, 'the reader to start');
    const stalls: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const fds = current.handoverFds();
      const state = current.handoverState();
      const h = await holdFds(fds);
      const t = process.hrtime.bigint();
      await current.release();
      const taken = takeBack(h, fds.length);
      h.kill('SIGKILL'); // our copies now keep the connection
      const next = FuseSession.adopt(taken, state, toy.handlers(), timeouts);
      for (const fd of taken) closeSync(fd); // adopt dup'd what it needs
      stalls.push(Number(process.hrtime.bigint() - t) / 1e6);
      assert.equal(next.handoverState().negotiated.generation, i);
      if (current !== first) await current.closed;
      current = next;
      second = current;
      const at = reader.rounds;
      await waitFor(() => (reader?.rounds ?? 0) >= at + 10, 15_000, `the reader after handover ${i}`);
    }
    const summary = await reader.finish();
    reader = undefined;
    assert.deepEqual(summary.errors, []);
    assert.equal(summary.mismatches, 0);
    process.stdout.write(
      `# five handovers: release→adopt ${stalls.map((ms) => ms.toFixed(1)).join(', ')} ms; reader ${summary.rounds} rounds, ` +
        `0 errors, longest single call ${summary.longestMs} ms\n`,
    );
  });

  it('three readers, slow asynchronous handlers: every request in flight at each of five handovers is resent and answered', async () => {
    const { toy, want } = toyWithData();
    const base = toy.handlers();
    // Answers 0-15 ms late, so each release leaves several requests unanswered in JavaScript.
    const slow: FuseHandlers = {
      ...base,
      read: (...a) => new Promise((resolve) => setTimeout(() => resolve(base.read(...a)), Math.random() * 15)),
      lookup: (...a) => new Promise((resolve) => setTimeout(() => resolve(base.lookup(...a)), Math.random() * 15)),
    };
    mnt = tempMountpoint();
    const timeouts = { entryTimeout: 0, attrTimeout: 0, threads: 3 };
    let current = await FuseSession.mount(mnt.path, slow, timeouts);
    first = current;
    const readers = [new Reader(mnt.path, want), new Reader(mnt.path, want), new Reader(mnt.path, want)];
    try {
      await waitFor(() => readers.every((r) => r.rounds >= 10), 20_000, 'the readers to start');
      let handedOver = 0;
      for (let i = 1; i <= 5; i++) {
        const fds = current.handoverFds();
        const state = current.handoverState();
        const h = await holdFds(fds);
        await current.release();
        handedOver += current.stats().handedOver;
        const taken = takeBack(h, fds.length);
        h.kill('SIGKILL');
        const next = FuseSession.adopt(taken, state, slow, timeouts);
        for (const fd of taken) closeSync(fd);
        current = next;
        second = current;
        const at = readers.map((r) => r.rounds);
        await waitFor(() => readers.every((r, k) => r.rounds >= (at[k] as number) + 10), 20_000, `the readers after handover ${i}`);
      }
      const summaries = await Promise.all(readers.map((r) => r.finish()));
      for (const s of summaries) {
        assert.deepEqual(s.errors, []);
        assert.equal(s.mismatches, 0);
      }
      assert.ok(handedOver >= 3, `${handedOver} requests were in flight across the five releases`);
      process.stdout.write(
        `# three readers, five handovers: ${handedOver} requests in flight resent; ` +
          `${summaries.map((s) => s.rounds).join('/')} rounds, 0 errors, longest single call ${Math.max(...summaries.map((s) => s.longestMs))} ms\n`,
      );
    } finally {
      for (const r of readers) r.kill();
    }
  });

  it('refuses a state of another format or version, and fds that are not /dev/fuse', async () => {
    const { toy } = toyWithData();
    mnt = tempMountpoint();
    first = await FuseSession.mount(mnt.path, toy.handlers());
    const state = first.handoverState();
    const fds = first.handoverFds();
    const refused = (s: unknown, f: number[] = fds): string => {
      try {
        FuseSession.adopt(f, s as SessionHandover, toy.handlers());
      } catch (err) {
        assert.ok(isStrataError(err), String(err));
        assert.equal(err.errno, 22);
        return err.message;
      }
      assert.fail('adopted');
    };
    assert.match(refused({ ...state, version: 2 }), /version 2 is not strata-fuse-handover version 1/);
    assert.match(refused({ ...state, format: 'strata-fuse-handover-ng' }), /strata-fuse-handover-ng/);
    assert.match(refused(null), /must be an object/);
    assert.match(refused({ ...state, negotiated: { ...state.negotiated, flags: '-1' } }), /flags/);
    const file = join(mnt.path, '..', `not-fuse-${process.pid}`);
    writeFileSync(file, 'x');
    const fd = openSync(file, 'r');
    opened.push(fd);
    assert.match(refused(state, [fd]), /not a \/dev\/fuse descriptor/);
    assert.match(refused(state, []), /fds/);
    // Nothing was touched: the first session still serves.
    const r = await runNode(`process.stdout.write(require('fs').readFileSync(process.argv[1], 'utf8'))`, [join(mnt.path, 'n3')]);
    assert.equal(r.stdout.toString(), 'name 3\n');
  });

  it('adoptedInos stay live without a request until the kernel forgets them; a held file keeps its own', async () => {
    const { toy, inos } = toyWithData();
    mnt = tempMountpoint();
    const long = { entryTimeout: 3600, attrTimeout: 0 };
    first = await FuseSession.mount(mnt.path, toy.handlers(), long);
    const dir = mnt.path;
    // A child that looks every name up (the kernel now holds a nodeid for each) and keeps n0 open.
    const holdOpen = spawn(process.execPath, [
      '-e',
      `const fs = require('fs'); for (let i = 0; i < ${NAMES}; i++) fs.lstatSync(process.argv[1] + '/n' + i);
       const fd = fs.openSync(process.argv[1] + '/n0', 'r'); process.stdout.write('ready\\n');
       process.stdin.once('data', () => { process.stdout.write(fs.readFileSync(fd, 'utf8')); process.exit(0); });`,
      dir,
    ]);
    let out = '';
    holdOpen.stdout.on('data', (b: Buffer) => (out += b.toString()));
    try {
      await waitFor(() => out.includes('ready'), 15_000, 'the child to look every name up');
      const held = new Set(first.liveInos());
      for (const ino of inos) assert.ok(held.has(ino), `ino ${ino} live before`);
      const state = first.handoverState();
      holder = await holdFds(first.handoverFds());
      await first.release();
      const taken = takeBack(holder, 1); // the master is enough to adopt (the old clones stay in the holder)
      opened.push(...taken);
      const forgotten: bigint[] = [];
      second = FuseSession.adopt(taken, state, { ...toy.handlers(), forget: (i) => forgotten.push(...i) }, { ...long, adoptedInos: inos });
      const live = new Set(second.liveInos());
      for (const ino of inos) assert.ok(live.has(ino), `adopted ino ${ino} live with no request since`);
      assert.equal(second.stats().nodes, NAMES, 'every adopted ino counted as held by the kernel');
      // Sweeps of the agent's table ask again and again: still live.
      for (let i = 0; i < 3; i++) assert.equal(new Set(second.liveInos()).size >= NAMES, true);
      // The kernel drops what nothing uses: each name's FORGET ends its adopted ino, whatever its count was.
      const dropped = await runNode(`require('fs').writeFileSync('/proc/sys/vm/drop_caches', '2')`);
      assert.equal(dropped.status, 0, dropped.stderr);
      const n0 = inos[0] as bigint;
      await waitFor(() => !new Set(second?.liveInos()).has(inos[1] as bigint), 10_000, 'FORGET of the adopted inos');
      const after = new Set(second.liveInos());
      assert.ok(after.has(n0), 'n0 is still open in the child: the kernel keeps it, so does the session');
      assert.ok(forgotten.length >= NAMES - 1, `forget handler told of ${forgotten.length}`);
      assert.ok(!forgotten.includes(n0));
      // The open file's nodeid still resolves to n0 in the successor.
      holdOpen.stdin.write('go\n');
      await waitFor(() => out.includes('name 0'), 10_000, 'the read of the held file');
    } finally {
      holdOpen.kill('SIGKILL');
    }
  });
});

/**
 * The server of a mount in a process of its own (the agent): mounts the toy
 * made from the data file argv[2], gives its fds to a detached sleeping
 * holder, prints {holder, count, state}; its Nth read (argv[4], 0: none)
 * never answers ("stalled" is printed). On a line on stdin: release() and
 * exit (the process-exit path must leave the mount alone).
 */
const SERVER = (dist: string): string => `const { FuseSession } = require(${JSON.stringify(join(dist, 'session.js'))});
  const { ToyFs } = require(${JSON.stringify(join(dist, 'toy-fs.js'))});
  const fs = require('fs'); const { spawn } = require('child_process');
  const [dir, dataFile, names, stallAt] = process.argv.slice(1);
  const toy = new ToyFs(1n); toy.file(1n, 'data', fs.readFileSync(dataFile));
  for (let i = 0; i < Number(names); i++) toy.file(1n, 'n' + i, Buffer.from('name ' + i + '\\n'));
  const base = toy.handlers(); let reads = 0;
  const handlers = { ...base, read: (...a) => {
    if (++reads === Number(stallAt)) { process.stdout.write('stalled\\n'); return new Promise(() => {}); }
    return base.read(...a);
  } };
  FuseSession.mount(dir, handlers, { entryTimeout: 0, attrTimeout: 0, threads: 2 }).then((s) => {
    const fds = s.handoverFds();
    const holder = spawn('sleep', ['120'], { stdio: ['ignore', 'ignore', 'ignore', ...fds], detached: true });
    holder.unref();
    holder.once('spawn', () => process.stdout.write(JSON.stringify({ holder: holder.pid, count: fds.length, state: s.handoverState() }) + '\\n'));
    process.stdin.once('data', async () => { await s.release(); process.stdout.write('released\\n', () => process.exit(0)); });
  });`;

describe('nodeids from inos', { skip: skipReason() }, () => {
  it('rootIno 5 and ino 1 swap and survive a takeover; ino 0, which no nodeid can name, is refused EIO', async () => {
    const toy = new ToyFs(5n);
    toy.file(5n, 'one', Buffer.from('ino one\n'), { ino: 1n });
    toy.file(5n, 'zero', Buffer.from('ino zero\n'), { ino: 0n });
    const mnt = tempMountpoint();
    let first: FuseSession | undefined;
    let second: FuseSession | undefined;
    let holder: ChildProcess | undefined;
    const taken: number[] = [];
    let child: ChildProcessWithoutNullStreams | undefined;
    let out = '';
    try {
      first = await FuseSession.mount(mnt.path, toy.handlers(), { rootIno: 5n, attrTimeout: 0 });
      child = spawn(process.execPath, [
        '-e',
        `const fs = require('fs'); let z = 'ok'; try { fs.statSync(process.argv[1] + '/zero'); } catch (e) { z = e.code; }
         const fd = fs.openSync(process.argv[1] + '/one', 'r'); process.stdout.write('zero:' + z + ' ino:' + fs.fstatSync(fd).ino + '\\n');
         process.stdin.once('data', () => { process.stdout.write(fs.readFileSync(fd, 'utf8')); process.exit(0); });`,
        mnt.path,
      ]);
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      await waitFor(() => out.includes('ino:'), 10_000, 'the child');
      assert.match(out, /zero:EIO ino:1\n/);
      assert.ok(new Set(first.liveInos()).has(1n));
      const fds = first.handoverFds();
      const state = first.handoverState();
      holder = await holdFds(fds);
      await first.release();
      taken.push(...takeBack(holder, 1));
      assert.throws(() => FuseSession.adopt(taken, state, toy.handlers(), { rootIno: 1n }), /rootIno 1 differs/);
      second = FuseSession.adopt(taken, state, toy.handlers(), { attrTimeout: 0 });
      child.stdin.write('go\n');
      await waitFor(() => out.includes('ino one'), 10_000, 'the read through the old nodeid');
      assert.ok(new Set(second.liveInos()).has(1n), 'nodeid 5 taken for ino 1');
    } finally {
      child?.kill('SIGKILL');
      holder?.kill('SIGKILL');
      for (const fd of taken) closeSync(fd);
      await cleanUp(second, undefined);
      await cleanUp(first, mnt);
    }
  });
});

describe('takeover from another process (the agent restarted or crashed)', { skip: skipReason() }, () => {
  let adopted: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  let server: ChildProcessWithoutNullStreams | undefined;
  let holderPid = 0;
  let reader: Reader | undefined;
  const opened: number[] = [];
  let dataFile = '';

  afterEach(async () => {
    reader?.kill();
    server?.kill('SIGKILL');
    if (holderPid) {
      try {
        process.kill(holderPid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (const fd of opened.splice(0)) closeSync(fd);
    await cleanUp(adopted, mnt);
    if (dataFile) rmSync(dataFile, { force: true });
    adopted = undefined;
    mnt = undefined;
    server = undefined;
    reader = undefined;
    holderPid = 0;
  });

  for (const how of ['release and exit', 'SIGKILL with a read in flight'] as const) {
    it(`${how}: the reader goes on without an error`, async () => {
      const { toy, data, want, inos } = toyWithData();
      dataFile = join(tmpdir(), `fuse-kernel-takeover-${process.pid}`);
      writeFileSync(dataFile, data);
      mnt = tempMountpoint();
      const crash = how.startsWith('SIGKILL');
      server = spawn(process.execPath, ['-e', SERVER(__dirname), '--', mnt.path, dataFile, String(NAMES), crash ? '25' : '0']);
      let out = '';
      server.stdout.on('data', (b: Buffer) => (out += b.toString()));
      server.stdin.on('error', () => undefined);
      const serverExit = new Promise<number | null>((resolve) => server?.on('close', (code) => resolve(code)));
      await waitFor(() => out.includes('"holder"'), 15_000, 'the server to mount');
      const hello = JSON.parse(out.split('\n').find((l) => l.includes('"holder"')) as string) as {
        holder: number;
        count: number;
        state: SessionHandover;
      };
      holderPid = hello.holder;
      reader = new Reader(mnt.path, want);
      if (crash) {
        await waitFor(() => out.includes('stalled'), 15_000, 'the stalled read');
        server.kill('SIGKILL');
      } else {
        await waitFor(() => (reader?.rounds ?? 0) >= 10, 15_000, 'the reader to start');
        server.stdin.write('release\n');
        await waitFor(() => out.includes('released'), 10_000, 'the release');
      }
      assert.equal(await within(serverExit, 10_000, 'the server to exit'), crash ? null : 0);
      const at = reader.rounds;
      const gone = Date.now();
      const taken: number[] = [];
      for (let i = 0; i < hello.count; i++) taken.push(addon().takeFd(holderPid, 3 + i));
      opened.push(...taken);
      adopted = FuseSession.adopt(taken, hello.state, toy.handlers(), { entryTimeout: 0, attrTimeout: 0, adoptedInos: inos });
      const adoptedAfter = Date.now() - gone;
      assert.equal(adopted.stats().resendErrno, 0);
      await waitFor(() => (reader?.rounds ?? 0) >= at + 20, 20_000, 'the reader after the takeover');
      const summary = await reader.finish();
      reader = undefined;
      assert.deepEqual(summary.errors, []);
      assert.equal(summary.mismatches, 0);
      if (crash) assert.ok(adopted.stats().toJs > 0);
      process.stdout.write(
        `# ${how}: adopted ${adoptedAfter} ms after the server exited; reader ${summary.rounds} rounds, 0 errors, ` +
          `longest single call ${summary.longestMs} ms\n`,
      );
    });
  }
});

describe('takeover through strata-fd-holder (the production path)', { skip: skipReason() ?? (existsSync(holderBinary()) ? undefined : 'no strata-fd-holder built') }, () => {
  it('put, release, list, adopt, put the successor\'s fds back: the reader sees no error, also after the old clones close', async () => {
    const { toy, want, inos } = toyWithData();
    const mnt = tempMountpoint();
    const stateDir = mkdtempSync(join(tmpdir(), 'fuse-kernel-holder-'));
    const socket = join(stateDir, 'holder.sock');
    let first: FuseSession | undefined;
    let second: FuseSession | undefined;
    let reader: Reader | undefined;
    let holderPid = 0;
    const clients: HolderClient[] = [];
    try {
      const timeouts = { entryTimeout: 0, attrTimeout: 0, threads: 3 };
      first = await FuseSession.mount(mnt.path, toy.handlers(), timeouts);
      reader = new Reader(mnt.path, want);
      await waitFor(() => (reader?.rounds ?? 0) >= 10, 15_000, 'the reader to start');
      const agent1 = await HolderClient.connect(socket, { spawn: true, stderr: 'ignore', idleExitMs: 0 });
      clients.push(agent1);
      holderPid = (await agent1.status()).pid;
      await agent1.put('m1', { state: first.handoverState() }, first.handoverFds());
      await first.release();
      agent1.close(); // the agent is gone; the holder keeps the connection

      const agent2 = await HolderClient.connect(socket);
      clients.push(agent2);
      const [entry] = await agent2.list();
      assert.ok(entry, 'the holder kept the entry');
      const state = entry.meta.state as SessionHandover;
      try {
        second = FuseSession.adopt(entry.fds, state, toy.handlers(), { ...timeouts, adoptedInos: inos });
      } finally {
        for (const fd of entry.fds) closeSync(fd);
      }
      // The successor's fds replace the old ones: the holder closes the old clones now.
      await agent2.put('m1', { state: second.handoverState() }, second.handoverFds());
      const at = reader.rounds;
      await waitFor(() => (reader?.rounds ?? 0) >= at + 20, 20_000, 'the reader after the takeover');
      const summary = await reader.finish();
      reader = undefined;
      assert.deepEqual(summary.errors, []);
      assert.equal(summary.mismatches, 0);
      await agent2.drop('m1');
    } finally {
      reader?.kill();
      for (const c of clients) c.close();
      if (holderPid) {
        try {
          process.kill(holderPid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await cleanUp(second, undefined);
      await cleanUp(first, mnt);
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});

describe('release() with an invalidation notice inside the kernel', { skip: skipReason() }, () => {
  it("settles 'released' once the successor has answered what the notice waited for", async () => {
    const toy = new ToyFs(1n, { cacheTtl: Infinity });
    const dir = toy.mkdir(1n, 'dir');
    toy.file(dir.ino, 'stuck', Buffer.from('here\n'));
    const base = toy.handlers();
    let asked = false;
    const firstHandlers: FuseHandlers = {
      ...base,
      lookup: (parent, name, caller) => {
        if (parent === dir.ino) {
          asked = true;
          return new Promise(() => undefined); // never answers: the successor will
        }
        return base.lookup(parent, name, caller);
      },
    };
    const mnt = tempMountpoint();
    let first: FuseSession | undefined;
    let second: FuseSession | undefined;
    let holder: ChildProcess | undefined;
    const taken: number[] = [];
    try {
      first = await FuseSession.mount(mnt.path, firstHandlers, { rootAttr: toy.nodes.get(1n)?.attr, entryTimeout: 3600 });
      const child = runNode(`try { process.stdout.write(require('fs').readFileSync(process.argv[1], 'utf8')); } catch (e) { process.stdout.write(e.code); }`, [
        join(mnt.path, 'dir', 'stuck'),
      ]);
      await waitFor(() => asked, 5000, 'the lookup of dir/stuck');
      // The kernel takes the directory's lock for this notice, which the lookup holds.
      const noticed = first.invalidateEntry(dir.ino, Buffer.from('other'));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(first.stats().notices, 1, 'the notice is inside the kernel');
      const fds = first.handoverFds();
      const state = first.handoverState();
      holder = await holdFds(fds);
      let settled = false;
      const released = first.release().then(() => (settled = true));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(settled, false, 'release waits for the notice, off the JavaScript thread');
      taken.push(...takeBack(holder, fds.length));
      second = FuseSession.adopt(taken, state, base, { rootAttr: toy.nodes.get(1n)?.attr, entryTimeout: 3600 });
      await within(released, 10_000, 'the release to settle');
      assert.equal(await first.closed, 'released');
      assert.equal(await noticed, false, 'settled false: the session ended before the kernel was done with it');
      const r = await within(child, 10_000, 'the stuck reader');
      assert.equal(r.stdout.toString(), 'here\n');
    } finally {
      holder?.kill('SIGKILL');
      for (const fd of taken) closeSync(fd);
      await cleanUp(second, undefined);
      await cleanUp(first, mnt);
    }
  });
});

describe('requestTimeoutMs: EIO from native code when no answer comes', { skip: skipReason() }, () => {
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;

  before(() => {
    mnt = tempMountpoint();
  });

  after(async () => {
    await cleanUp(session, mnt);
  });

  /** Reads argv[1] and prints "<errno code or ok> <ms>". */
  const TIMED_READ = `const fs = require('fs'); const t = Date.now(); let r = 'ok';
    try { const fd = fs.openSync(process.argv[1], fs.constants.O_RDONLY | fs.constants.O_DIRECT); fs.readSync(fd, Buffer.alloc(4096), 0, 4096, 0); }
    catch (e) { r = e.code; }
    process.stdout.write(r + ' ' + (Date.now() - t));`;

  it('a handler that never answers: EIO within the bound, the late answer dropped', async () => {
    const toy = new ToyFs(1n);
    toy.file(1n, 'never', Buffer.from('never answered\n'));
    toy.file(1n, 'fine', Buffer.from('fine\n'));
    toy.file(1n, 'busy', Buffer.from('busy\n'));
    toy.file(1n, 'later', Buffer.from('later\n'));
    const base = toy.handlers();
    const late: Array<() => void> = [];
    let laterReads = 0;
    session = await FuseSession.mount(
      (mnt as { path: string }).path,
      {
        ...base,
        read: (ino, fh, offset, size, caller) => {
          const name = [...(toy.nodes.get(1n)?.children?.values() ?? [])].find((c) => c.ino === ino)?.name.toString();
          if (name === 'never') return new Promise<Buffer>((resolve) => late.push(() => resolve(Buffer.from('late'))));
          if (name === 'busy') blockFor(3000); // the JavaScript thread is stuck: only native code can answer
          if (name === 'later') laterReads++;
          return base.read(ino, fh, offset, size, caller);
        },
      },
      { requestTimeoutMs: 500 },
    );
    const dir = (mnt as { path: string }).path;
    const never = await runNode(TIMED_READ, [join(dir, 'never')]);
    const [code, ms] = never.stdout.toString().split(' ');
    assert.equal(code, 'EIO');
    assert.ok(Number(ms) >= 450 && Number(ms) < 1000, `EIO after ${ms} ms (bound 500 ms)`);
    for (const answer of late) answer();
    await waitFor(() => (session?.stats().lateReplies ?? 0) >= 1, 5000, 'the late answer to be dropped');
    assert.ok(session.stats().timeouts >= 1);

    // A busy loop of 3 s on the JavaScript thread: the reader still gets EIO within the bound.
    // A read that arrives while it is stuck times out too, and its handler never runs afterwards.
    const busy = runNode(TIMED_READ, [join(dir, 'busy')]);
    const later = runNode(`setTimeout(() => { ${TIMED_READ} }, 800)`, [join(dir, 'later')]);
    const result = await within(busy, 20_000, 'the busy read');
    const [busyCode, busyMs] = result.stdout.toString().split(' ');
    assert.equal(busyCode, 'EIO');
    assert.ok(Number(busyMs) < 1000, `EIO after ${busyMs} ms with the JavaScript thread busy for 3000 ms`);
    const [laterCode, laterMs] = (await within(later, 20_000, 'the later read')).stdout.toString().split(' ');
    assert.equal(laterCode, 'EIO');
    assert.ok(Number(laterMs) < 1000, `EIO after ${laterMs} ms`);
    assert.equal(laterReads, 0, 'the backlog answered natively is not handed to the handler');
    process.stdout.write(
      `# requestTimeoutMs 500: never-answering handler EIO after ${ms} ms; JS thread busy 3 s: EIO after ${busyMs} ms, ` +
        `a read arriving meanwhile EIO after ${laterMs} ms (its handler never run)\n`,
    );

    // And the session serves on.
    const fine = await runNode(`process.stdout.write(require('fs').readFileSync(process.argv[1], 'utf8'))`, [join(dir, 'fine')]);
    assert.equal(fine.stdout.toString(), 'fine\n');
  });
});
