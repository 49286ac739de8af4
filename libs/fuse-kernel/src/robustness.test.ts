import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { topMountAt } from './mountinfo';
import { cleanUp, run, runNode, skipReason, tempMountpoint, waitFor, within } from './mount-harness';
import type { FuseHandlers } from './types';

const CONNECTIONS = '/sys/fs/fuse/connections';

/** A child node script that reports on stdout and is driven by lines on stdin. */
class Interactive {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  private out = '';

  constructor(script: string, args: string[]) {
    this.child = spawn(process.execPath, ['-e', script, '--', ...args]);
    this.child.stdout.on('data', (b: Buffer) => (this.out += b.toString()));
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal, at: Date.now() })));
  }

  async line(text: string, timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.out.includes(text), timeoutMs, `child output ${text}`);
  }

  get output(): string {
    return this.out;
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }
}

/** Opens argv[1], says "open", reads a line from stdin, then reads the file and prints the result. */
const HOLD_OPEN = `const fs = require('fs');
  const fd = fs.openSync(process.argv[1], 'r');
  process.stdout.write('open\\n');
  process.stdin.once('data', () => {
    try { process.stdout.write('read:' + fs.readFileSync(fd).toString() + '\\n'); }
    catch (e) { process.stdout.write('error:' + e.code + '\\n'); }
    process.exit(0);
  });`;

describe('ending a session', { skip: skipReason() }, () => {
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  let mountedFusectl = false;
  const never = new Set<string>();

  before(async () => {
    if (!existsSync(join(CONNECTIONS, '..'))) return;
    const mounted = await run('mountpoint', ['-q', CONNECTIONS]);
    if (mounted.status !== 0) {
      const r = await run('mount', ['-t', 'fusectl', 'fusectl', CONNECTIONS]);
      mountedFusectl = r.status === 0;
    }
  });

  after(async () => {
    if (mountedFusectl) await run('umount', [CONNECTIONS]);
  });

  afterEach(async () => {
    await cleanUp(session, mnt);
    session = undefined;
    mnt = undefined;
  });

  async function mountToy(): Promise<{ toy: ToyFs; s: FuseSession; dir: string }> {
    const toy = new ToyFs(1n);
    toy.file(1n, 'a', Buffer.from('alpha\n'));
    toy.file(1n, 'b', Buffer.from('bravo\n'));
    const base = toy.handlers();
    const handlers: FuseHandlers = {
      ...base,
      lookup: (parent, name, caller) => (never.has(name.toString()) ? new Promise(() => undefined) : base.lookup(parent, name, caller)),
    };
    mnt = tempMountpoint();
    session = await FuseSession.mount(mnt.path, handlers, { rootAttr: toy.nodes.get(1n)?.attr });
    return { toy, s: session, dir: mnt.path };
  }

  // Not realpath: the root of an aborted mount answers ENOTCONN to everything, lstat included.
  const isMounted = (dir: string): boolean => topMountAt(Buffer.from(dir))?.fsType === 'fuse.strata';

  it('ends without a crash when the kernel aborts the connection', async () => {
    const { s, dir } = await mountToy();
    const abort = join(CONNECTIONS, String(s.connection), 'abort');
    assert.ok(existsSync(abort), `no ${abort}`);
    assert.equal((await run('cat', [join(dir, 'a')])).stdout.toString(), 'alpha\n');
    await run('sh', ['-c', `echo 1 > ${abort}`]);
    assert.equal(await within(s.closed, 10_000, 'the session to close'), 'kernel');
    const r = await runNode(`try { require('fs').readFileSync(process.argv[1]); } catch (e) { process.stdout.write(e.code); }`, [
      join(dir, 'b'),
    ]);
    assert.equal(r.stdout.toString(), 'ENOTCONN');
    assert.ok(isMounted(dir), 'an aborted mount stays until unmounted');
    await s.unmount();
    assert.ok(!isMounted(dir), 'unmount() removes the stale mount');
  });

  it('ends when someone else unmounts it lazily', async () => {
    const { s, dir } = await mountToy();
    const r = await run('umount', ['-l', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(await within(s.closed, 10_000, 'the session to close'), 'kernel');
    await s.unmount(); // nothing left to do, and no error
  });

  it('unmounts while a reader holds a file open: the reader gets ENOTCONN', async () => {
    const { s, dir } = await mountToy();
    const reader = new Interactive(HOLD_OPEN, [join(dir, 'a')]);
    await reader.line('open');
    const t0 = Date.now();
    await s.unmount();
    assert.ok(Date.now() - t0 < 1000, 'unmount waited for the open file');
    assert.ok(!isMounted(dir));
    reader.send('go');
    const exit = await within(reader.exited, 20_000, 'the reader to exit');
    assert.equal(exit.code, 0);
    assert.match(reader.output, /error:ENOTCONN/);
  });

  it('detach() keeps serving open files and ends when the last one closes', async () => {
    const { s, dir } = await mountToy();
    const reader = new Interactive(HOLD_OPEN, [join(dir, 'b')]);
    await reader.line('open');
    s.detach();
    assert.ok(!isMounted(dir));
    reader.send('go');
    await within(reader.exited, 20_000, 'the reader to exit');
    assert.match(reader.output, /read:bravo/);
    assert.equal(await within(s.closed, 10_000, 'the session to close'), 'kernel');
  });

  it('unmounts while a handler never answers, releasing the waiting caller', async () => {
    never.add('hang');
    const { s, dir } = await mountToy();
    const waiting = runNode(`try { require('fs').statSync(process.argv[1]); } catch (e) { process.stdout.write(e.code); }`, [
      join(dir, 'hang'),
    ]);
    await waitFor(() => s.stats().pending > 0, 5000, 'the request to reach JavaScript');
    await s.unmount();
    const r = await waiting;
    // In flight when the connection went: ECONNABORTED (a request made after it: ENOTCONN).
    assert.equal(r.stdout.toString(), 'ECONNABORTED');
  });

  it('answers EINTR to an interrupted request, so a killed caller exits', async () => {
    never.add('stuck');
    const { s, dir } = await mountToy();
    const caller = new Interactive(`process.stdout.write('go\\n'); require('fs').statSync(process.argv[1]);`, [join(dir, 'stuck')]);
    await caller.line('go');
    await waitFor(() => s.stats().pending > 0, 5000, 'the request to reach JavaScript');
    const t0 = Date.now();
    caller.child.kill('SIGKILL');
    const exit = await within(caller.exited, 20_000, 'the caller to exit');
    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(exit.at - t0 < 2000, `the killed caller took ${exit.at - t0} ms`);
    assert.ok(s.stats().interrupts >= 1);
    assert.equal(s.stats().pending, 0);
  });

  it('serves concurrent walkers through asynchronous handlers, then forgets what they looked up', async (t) => {
    const toy = new ToyFs(1n);
    let bytes = 0;
    let files = 0;
    for (let d = 0; d < 20; d++) {
      const dir = toy.mkdir(1n, `d${d}`);
      for (let f = 0; f < 50; f++) {
        const data = Buffer.alloc(100 + f * 37, d + f);
        toy.file(dir.ino, `f${f}`, data);
        bytes += data.length;
        files++;
      }
    }
    const base = toy.handlers();
    const jitter = async <T>(v: T): Promise<Awaited<T>> => {
      // Mostly the next turn of the loop, sometimes a timer: answers come back out of order.
      await new Promise((r) => (Math.random() < 0.05 ? setTimeout(r, 2) : setImmediate(r)));
      return await v;
    };
    const handlers: FuseHandlers = {
      ...base,
      lookup: (p, n, c) => jitter(base.lookup(p, n, c)),
      readdir: (i, c) => jitter(base.readdir(i, c)),
      read: (i, fh, o, sz, c) => jitter(base.read(i, fh, o, sz, c)),
    };
    mnt = tempMountpoint();
    session = await FuseSession.mount(mnt.path, handlers, { rootAttr: toy.nodes.get(1n)?.attr, entryTimeout: 0.05, attrTimeout: 0.05 });
    const t0 = Date.now();
    const walk = `find ${mnt.path} -type f | sort | xargs cat | wc -c; find ${mnt.path} -type f | wc -l`;
    const results = await Promise.all(Array.from({ length: 6 }, () => run('sh', ['-c', walk], { timeoutMs: 30_000 })));
    for (const r of results) {
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.stdout.toString().trim().split('\n').map(Number), [bytes, files]);
    }
    t.diagnostic(`6 concurrent walks of ${files} files: ${Date.now() - t0} ms`);
    const s = session;
    assert.equal(s.stats().pending, 0);
    assert.ok(s.stats().nodes > 0);
    const t1 = Date.now();
    await run('sh', ['-c', 'echo 2 > /proc/sys/vm/drop_caches']);
    await waitFor(() => s.stats().nodes === 0, 10_000, 'every node forgotten');
    t.diagnostic(`forgotten after drop_caches in ${Date.now() - t1} ms`);
  });
});
