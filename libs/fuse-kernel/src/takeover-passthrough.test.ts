/**
 * FUSE passthrough across a takeover. The kernel pins an inode open through
 * passthrough to its backing file and takes only passthrough opens with the
 * same backing id from then on; an inode with cached opens takes no
 * passthrough open. A successor that did not know how files are open would
 * answer OPENs the kernel fails (EIO) — the control case shows it does —
 * so release() hands on the opens and backing ids (handoverState().files)
 * and adopt() answers like the session before it.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess, ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addon } from './native';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { cleanUp, run, skipReason, tempMountpoint, waitFor, within } from './mount-harness';
import type { FuseHandlers, SessionHandover } from './types';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * Opens argv[1]/blob and argv[1]/plain and keeps both open; "read" on stdin
 * reads each whole through its open fd and prints "sums A B" (or "error
 * CODE"); any other line exits.
 */
const HOLDER = `const fs = require('fs'); const crypto = require('crypto');
  const dir = process.argv[1];
  const a = fs.openSync(dir + '/blob', 'r'); const b = fs.openSync(dir + '/plain', 'r');
  const sum = (fd) => { const h = crypto.createHash('sha256'); const buf = Buffer.alloc(1 << 20);
    for (let p = 0; ; ) { const n = fs.readSync(fd, buf, 0, buf.length, p); if (n === 0) break; h.update(buf.subarray(0, n)); p += n; }
    return h.digest('hex'); };
  process.stdout.write('ready\\n');
  require('readline').createInterface({ input: process.stdin }).on('line', (l) => {
    if (l !== 'read') process.exit(0);
    try { process.stdout.write('sums ' + sum(a) + ' ' + sum(b) + '\\n'); } catch (e) { process.stdout.write('error ' + (e.code || e) + '\\n'); }
  });`;

class OpenFiles {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  private out = '';

  constructor(dir: string) {
    this.child = spawn(process.execPath, ['-e', HOLDER, dir]);
    this.child.stdout.on('data', (b: Buffer) => (this.out += b.toString()));
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
  }

  async ready(): Promise<void> {
    await waitFor(() => this.out.includes('ready'), 15_000, 'the child to open both files');
  }

  /** Both files read whole through the fds opened before: [blob, plain]. */
  async read(): Promise<[string, string]> {
    const before = this.out.length;
    this.child.stdin.write('read\n');
    await waitFor(() => /(sums|error) .*\n/.test(this.out.slice(before)), 20_000, 'the held files to be read');
    const line = /(sums|error) (.*)\n/.exec(this.out.slice(before));
    assert.equal(line?.[1], 'sums', `reading the held files: ${line?.[0]}`);
    return (line?.[2] as string).split(' ') as [string, string];
  }

  async close(): Promise<void> {
    this.child.stdin.write('exit\n');
    await within(this.exited, 10_000, 'the child to exit');
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

function takeBack(holder: ChildProcess, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(addon().takeFd(holder.pid as number, 3 + i));
  return out;
}

/** READs that reached the handler, per ino. */
function counting(handlers: FuseHandlers): { handlers: FuseHandlers; reads: Map<bigint, number> } {
  const reads = new Map<bigint, number>();
  return {
    reads,
    handlers: {
      ...handlers,
      read: (ino, fh, offset, size, caller) => {
        reads.set(ino, (reads.get(ino) ?? 0) + 1);
        return handlers.read(ino, fh, offset, size, caller);
      },
    },
  };
}

describe('takeover with FUSE passthrough', { skip: skipReason() }, () => {
  let first: FuseSession | undefined;
  let second: FuseSession | undefined;
  let third: FuseSession | undefined;
  let holder2: ChildProcess | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  let holder: ChildProcess | undefined;
  let files: OpenFiles | undefined;
  const opened: number[] = [];
  let store = '';

  afterEach(async () => {
    files?.kill();
    holder?.kill('SIGKILL');
    holder2?.kill('SIGKILL');
    for (const fd of opened.splice(0)) closeSync(fd);
    await cleanUp(third, undefined);
    await cleanUp(second, undefined);
    await cleanUp(first, mnt);
    first = second = third = undefined;
    mnt = undefined;
    holder = holder2 = undefined;
    files = undefined;
    if (store) rmSync(store, { recursive: true, force: true });
    store = '';
  });

  /** Gives session's fds to a second holder, releases it and returns its state after release. */
  async function handOn(session: FuseSession, count: number): Promise<SessionHandover> {
    const fds = session.handoverFds();
    assert.equal(fds.length, count);
    holder2 = await holdFds(fds);
    await session.release();
    return JSON.parse(JSON.stringify(session.handoverState())) as SessionHandover;
  }

  /**
   * blob: read() answers other bytes than its backing file holds, so who
   * served a read shows; plain: read() answers its real bytes. Mounted,
   * blob registered (passthrough), a child holding blob (passthrough) and
   * plain (cached: nothing registered yet) open, the first session released
   * and its state taken after release.
   */
  async function handedOver(): Promise<{ toy: ToyFs; blob: Buffer; plain: Buffer; inos: { blob: bigint; plain: bigint }; state: SessionHandover; fds: number[] } | undefined> {
    const toy = new ToyFs(1n);
    const blob = randomBytes(3 * 1024 * 1024 + 5);
    const plain = randomBytes(256 * 1024 + 3);
    const inos = { blob: toy.file(1n, 'blob', Buffer.alloc(blob.length, 0x2a)).ino, plain: toy.file(1n, 'plain', plain).ino };
    store = mkdtempSync(join(tmpdir(), 'fuse-kernel-takeover-backing-'));
    writeFileSync(join(store, 'blob'), blob);
    writeFileSync(join(store, 'plain'), plain);
    mnt = tempMountpoint();
    first = await FuseSession.mount(mnt.path, toy.handlers(), { entryTimeout: 0, attrTimeout: 0 });
    if (!first.passthroughAvailable) return undefined;
    const fd = openSync(join(store, 'blob'), 'r');
    try {
      assert.equal(first.setFileData(inos.blob, fd), 'passthrough');
    } finally {
      closeSync(fd);
    }
    files = new OpenFiles(mnt.path);
    await files.ready();
    assert.deepEqual(await files.read(), [sha(blob), sha(plain)]);
    assert.equal(first.handoverState().files, undefined, 'a live session hands on no files (they would be stale)');
    const fds = first.handoverFds();
    holder = await holdFds(fds);
    await first.release();
    const state = JSON.parse(JSON.stringify(first.handoverState())) as SessionHandover;
    return { toy, blob, plain, inos, state, fds };
  }

  it('files open through passthrough and cached stay readable, and new opens of both work, after adopt()', async (t) => {
    const h = await handedOver();
    if (!h || !mnt || !files || !holder) return t.skip('the kernel did not offer FUSE_PASSTHROUGH');
    const { toy, blob, plain, inos, state, fds } = h;
    const where = (name: string): string => join((mnt as { path: string }).path, name);

    // What the first session left open in the kernel.
    const byIno = new Map(state.files?.opens.map((o) => [o.ino, o]));
    const blobOpen = byIno.get(inos.blob.toString());
    assert.equal(blobOpen?.passthrough, 1);
    assert.equal(blobOpen?.cached, 0);
    assert.ok((blobOpen?.backingId ?? 0) > 0);
    assert.deepEqual(byIno.get(inos.plain.toString()), { ino: inos.plain.toString(), cached: 1, passthrough: 0, backingId: -1 });
    assert.deepEqual(state.files?.backings, [{ ino: inos.blob.toString(), backingId: blobOpen?.backingId }]);

    const taken = takeBack(holder, fds.length);
    opened.push(...taken);
    const c = counting(toy.handlers());
    second = FuseSession.adopt(taken, state, c.handlers, { entryTimeout: 0, attrTimeout: 0, adoptedInos: [inos.blob, inos.plain] });
    assert.equal(second.stats().backings, 1, 'blob is served through the backing id it had');

    // The held files read the same bytes as before.
    assert.deepEqual(await files.read(), [sha(blob), sha(plain)]);
    // A new open of blob: passthrough with the same backing id (another would be EIO), no READ in JavaScript.
    let r = await run('sh', ['-c', `sha256sum < ${where('blob')}`]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString().split(' ')[0], sha(blob));
    assert.equal(c.reads.get(inos.blob) ?? 0, 0, 'no READ of blob reached JavaScript');

    // plain gets registered while the child holds it open cached: new opens must stay cached until it closes.
    const plainFd = openSync(join(store, 'plain'), 'r');
    try {
      assert.equal(second.setFileData(inos.plain, plainFd), 'passthrough');
    } finally {
      closeSync(plainFd);
    }
    r = await run('sh', ['-c', `sha256sum < ${where('plain')}`]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString().split(' ')[0], sha(plain));

    // The agent registering blob again (a new backing id) while the child holds it: new opens keep the old id until it closes.
    const blobFd = openSync(join(store, 'blob'), 'r');
    try {
      assert.equal(second.setFileData(inos.blob, blobFd), 'passthrough');
    } finally {
      closeSync(blobFd);
    }
    r = await run('sh', ['-c', `sha256sum < ${where('blob')}`]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString().split(' ')[0], sha(blob));
    assert.deepEqual(await files.read(), [sha(blob), sha(plain)]);

    // Handed on once more: the successor's state names the first session's id for blob's open file and its own
    // registrations (blob's new id, plain's), and a third session serves them all alike.
    const state2 = await handOn(second, taken.length);
    const opens2 = new Map(state2.files?.opens.map((o) => [o.ino, o]));
    assert.equal(opens2.get(inos.blob.toString())?.backingId, blobOpen?.backingId, "blob's open file still uses the first id");
    assert.equal(opens2.get(inos.plain.toString())?.cached, 1);
    const registered = new Map(state2.files?.backings.map((b) => [b.ino, b.backingId]));
    assert.equal(registered.size, 2);
    assert.notEqual(registered.get(inos.blob.toString()), blobOpen?.backingId, 'blob registered anew');
    const taken2 = takeBack(holder2 as ChildProcess, taken.length);
    opened.push(...taken2);
    third = FuseSession.adopt(taken2, state2, c.handlers, { entryTimeout: 0, attrTimeout: 0, adoptedInos: [inos.blob, inos.plain] });
    second = undefined;
    assert.equal(third.stats().backings, 2);
    assert.deepEqual(await files.read(), [sha(blob), sha(plain)]);
    for (const name of ['blob', 'plain']) {
      r = await run('sh', ['-c', `sha256sum < ${where(name)}`]);
      assert.equal(r.status, 0, r.stderr.toString());
      assert.equal(r.stdout.toString().split(' ')[0], sha(name === 'blob' ? blob : plain));
    }

    // The child closes what it opened under the first session: RELEASE of those fhs counts the opens down
    // (plain's cached one, blob's passthrough one), so now plain opens through passthrough too.
    await files.close();
    files = undefined;
    const readsBefore = c.reads.get(inos.plain) ?? 0;
    let served = '';
    for (let i = 0; i < 50 && served === ''; i++) {
      // The RELEASE of a closed file reaches the session asynchronously: retry briefly until plain opens passthrough.
      r = await run('sh', ['-c', `sha256sum < ${where('plain')}`]);
      assert.equal(r.status, 0, r.stderr.toString());
      assert.equal(r.stdout.toString().split(' ')[0], sha(plain));
      if ((c.reads.get(inos.plain) ?? 0) === readsBefore) served = 'passthrough';
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(served, 'passthrough', 'plain served by passthrough once its cached open was released');
    r = await run('sh', ['-c', `sha256sum < ${where('blob')}`]);
    assert.equal(r.stdout.toString().split(' ')[0], sha(blob));
    assert.equal(c.reads.get(inos.blob) ?? 0, 0);
    assert.equal(third.stats().backings, 2);
    process.stdout.write(
      `# passthrough takeover: ${state.files?.opens.length} inos open and ${state.files?.backings.length} backing id handed on, then ` +
        `${state2.files?.opens.length} and ${state2.files?.backings.length}; 0 READs of blob in either successor\n`,
    );
  });

  it('control: a successor told nothing of the open files answers an OPEN the kernel fails (EIO)', async (t) => {
    const h = await handedOver();
    if (!h || !mnt || !files || !holder) return t.skip('the kernel did not offer FUSE_PASSTHROUGH');
    const { toy, blob, plain, inos, fds } = h;
    const state: SessionHandover = { ...h.state };
    delete state.files;
    const taken = takeBack(holder, fds.length);
    opened.push(...taken);
    second = FuseSession.adopt(taken, state, toy.handlers(), { entryTimeout: 0, attrTimeout: 0, adoptedInos: [inos.blob, inos.plain] });
    assert.deepEqual(await files.read(), [sha(blob), sha(plain)], 'files open already are not affected');
    // Unknown to it, blob is answered cached while the kernel holds it in passthrough mode.
    const r = await run('sh', ['-c', `cat ${join(mnt.path, 'blob')} > /dev/null`]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr.toString(), /Input\/output error/);
  });
});

/**
 * A passthrough server in its own process (argv: mountpoint, store dir,
 * open-modes file): blob (read() answers 0x2a bytes, its backing file the
 * real ones) registered for passthrough, plain cached; its fds given to a
 * detached sleeping holder; prints {holder, count, state, inos}.
 */
const SERVER = (dist: string): string => `const { FuseSession } = require(${JSON.stringify(join(dist, 'session.js'))});
  const { ToyFs } = require(${JSON.stringify(join(dist, 'toy-fs.js'))});
  const fs = require('fs'); const { spawn } = require('child_process');
  const [dir, store, table] = process.argv.slice(1);
  const toy = new ToyFs(1n);
  const blob = toy.file(1n, 'blob', Buffer.alloc(fs.statSync(store + '/blob').size, 0x2a)).ino;
  const plain = toy.file(1n, 'plain', fs.readFileSync(store + '/plain')).ino;
  FuseSession.mount(dir, toy.handlers(), { entryTimeout: 0, attrTimeout: 0, threads: 2, openModesFile: table }).then((s) => {
    if (!s.passthroughAvailable) { process.stdout.write(JSON.stringify({ holder: 0 }) + '\\n'); return; }
    const fd = fs.openSync(store + '/blob', 'r'); s.setFileData(blob, fd); fs.closeSync(fd);
    const fds = s.handoverFds();
    const holder = spawn('sleep', ['120'], { stdio: ['ignore', 'ignore', 'ignore', ...fds], detached: true });
    holder.unref();
    holder.once('spawn', () => process.stdout.write(JSON.stringify({ holder: holder.pid, count: fds.length, state: s.handoverState(),
      inos: { blob: String(blob), plain: String(plain) } }) + '\\n'));
  });`;

describe('takeover with FUSE passthrough after the server was killed (the open-modes file)', { skip: skipReason() }, () => {
  let adopted: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  let server: ChildProcessWithoutNullStreams | undefined;
  let holderPid = 0;
  let files: OpenFiles | undefined;
  const opened: number[] = [];
  let store = '';

  afterEach(async () => {
    files?.kill();
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
    if (store) rmSync(store, { recursive: true, force: true });
    adopted = mnt = server = files = undefined;
    holderPid = 0;
    store = '';
  });

  /** The server mounted, blob held open through passthrough and plain cached by a child, the server SIGKILLed. */
  async function crashed(): Promise<
    { blob: Buffer; plain: Buffer; inos: { blob: bigint; plain: bigint }; state: SessionHandover; fds: number[]; table: string } | undefined
  > {
    store = mkdtempSync(join(tmpdir(), 'fuse-kernel-crash-backing-'));
    const blob = randomBytes(2 * 1024 * 1024 + 7);
    const plain = randomBytes(128 * 1024 + 1);
    writeFileSync(join(store, 'blob'), blob);
    writeFileSync(join(store, 'plain'), plain);
    const table = join(store, 'mount.opens');
    mnt = tempMountpoint();
    server = spawn(process.execPath, ['-e', SERVER(__dirname), '--', mnt.path, store, table]);
    let out = '';
    server.stdout.on('data', (b: Buffer) => (out += b.toString()));
    server.stdin.on('error', () => undefined);
    const exited = new Promise<string | null>((resolve) => server?.on('close', (_code, signal) => resolve(signal)));
    await waitFor(() => out.includes('"holder"'), 15_000, 'the server to mount');
    const hello = JSON.parse(out.split('\n').find((l) => l.includes('"holder"')) as string) as {
      holder: number;
      count: number;
      state: SessionHandover;
      inos: { blob: string; plain: string };
    };
    if (hello.holder === 0) return undefined;
    holderPid = hello.holder;
    assert.ok(existsSync(table), 'the server keeps its open-modes file');
    files = new OpenFiles(mnt.path);
    await files.ready();
    assert.deepEqual(await files.read(), [sha(blob), sha(plain)], 'blob through passthrough (its backing bytes, not the 0x2a read() answers)');
    server.kill('SIGKILL');
    assert.equal(await within(exited, 10_000, 'the server to die'), 'SIGKILL');
    server = undefined;
    const fds: number[] = [];
    for (let i = 0; i < hello.count; i++) fds.push(addon().takeFd(holderPid, 3 + i));
    opened.push(...fds);
    assert.equal(hello.state.files, undefined, 'no state was taken after a release');
    return { blob, plain, inos: { blob: BigInt(hello.inos.blob), plain: BigInt(hello.inos.plain) }, state: hello.state, fds, table };
  }

  it('the successor reads the open-modes file: held files read on, a new open of blob is passthrough (0 READs), plain opens cached', async (t) => {
    const h = await crashed();
    if (!h || !mnt || !files) return t.skip('the kernel did not offer FUSE_PASSTHROUGH');
    const where = (name: string): string => join((mnt as { path: string }).path, name);
    const toy = new ToyFs(1n);
    toy.file(1n, 'blob', Buffer.alloc(h.blob.length, 0x2a));
    toy.file(1n, 'plain', h.plain);
    const c = counting(toy.handlers());
    adopted = FuseSession.adopt(h.fds, h.state, c.handlers, { entryTimeout: 0, attrTimeout: 0, adoptedInos: [h.inos.blob, h.inos.plain], openModesFile: h.table });
    const st = adopted.stats();
    assert.equal(st.resendErrno, 0);
    assert.equal(st.openModes.restoredFrom, 'table', st.openModes.problem);
    assert.equal(st.openModes.restoredOpens, 2, 'blob (passthrough) and plain (cached) are open');
    assert.equal(st.openModes.restoredBackings, 1, "blob's registration");
    assert.equal(st.openModes.records, 2, 'the successor keeps the file, made anew from what it restored');
    assert.equal(st.backings, 1, 'blob is served through the backing id it had');
    assert.equal(adopted.handoverState().negotiated.generation, h.state.negotiated.generation + 1);

    assert.deepEqual(await files.read(), [sha(h.blob), sha(h.plain)]);
    const started = performance.now();
    let r = await run('sh', ['-c', `sha256sum < ${where('blob')}`]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString().split(' ')[0], sha(h.blob));
    const blobMs = performance.now() - started;
    assert.equal(c.reads.get(h.inos.blob) ?? 0, 0, 'no READ of blob reached JavaScript');
    r = await run('sh', ['-c', `sha256sum < ${where('plain')}`]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(r.stdout.toString().split(' ')[0], sha(h.plain));
    assert.ok((c.reads.get(h.inos.plain) ?? 0) > 0, 'plain is served cached (nothing registered)');

    // The child closes what it opened under the dead server: RELEASE of those fhs counts the opens down, and the file says so.
    await files.close();
    files = undefined;
    await waitFor(() => adopted?.stats().openModes.records === 1, 10_000, "the old opens' RELEASEs");
    r = await run('sh', ['-c', `sha256sum < ${where('blob')}`]);
    assert.equal(r.stdout.toString().split(' ')[0], sha(h.blob));
    assert.equal(c.reads.get(h.inos.blob) ?? 0, 0);
    process.stdout.write(
      `# crash takeover with passthrough: ${st.openModes.restoredOpens} open inos and ${st.openModes.restoredBackings} backing id ` +
        `restored from the open-modes file; new open of blob read in ${Math.round(blobMs)} ms with 0 READs in JavaScript\n`,
    );
  });

  it('a full open-modes file: opens it cannot record are cached, never passthrough, and the successor knows the file is incomplete', async (t) => {
    store = mkdtempSync(join(tmpdir(), 'fuse-kernel-full-table-'));
    const blob = randomBytes(512 * 1024 + 3);
    const plain = randomBytes(64 * 1024 + 1);
    writeFileSync(join(store, 'blob'), blob);
    writeFileSync(join(store, 'plain'), plain);
    const table = join(store, 'mount.opens');
    const toy = new ToyFs(1n);
    const inos = { blob: toy.file(1n, 'blob', Buffer.alloc(blob.length, 0x2a)).ino, plain: toy.file(1n, 'plain', plain).ino };
    const c = counting(toy.handlers());
    mnt = tempMountpoint();
    const where = (name: string): string => join((mnt as { path: string }).path, name);
    let first: FuseSession | undefined = await FuseSession.mount(mnt.path, c.handlers, { entryTimeout: 0, attrTimeout: 0, openModesFile: table, openModesCapacity: 1 });
    let holder: ChildProcess | undefined;
    try {
      if (!first.passthroughAvailable) return t.skip('the kernel did not offer FUSE_PASSTHROUGH');
      const register = (s: FuseSession, ino: bigint, name: string): void => {
        const fd = openSync(join(store, name), 'r');
        try {
          assert.equal(s.setFileData(ino, fd), 'passthrough');
        } finally {
          closeSync(fd);
        }
      };
      register(first, inos.blob, 'blob'); // takes the one record
      files = new OpenFiles(mnt.path); // blob through passthrough (recorded), plain cached (no record left: overflow)
      await files.ready();
      assert.deepEqual(await files.read(), [sha(blob), sha(plain)]);
      let st = first.stats().openModes;
      assert.deepEqual([st.capacity, st.records, st.overflowed], [1, 1, true]);
      register(first, inos.plain, 'plain'); // not recorded either
      await files.close();
      files = undefined;
      await waitFor(() => first?.stats().openModes.records === 1, 5_000, 'the RELEASEs');
      // plain now has no open left; blob's registration holds the one record, so a passthrough open of plain could not be recorded: cached.
      const before = c.reads.get(inos.plain) ?? 0;
      const r = await run('sh', ['-c', `sha256sum < ${where('plain')}`]);
      assert.equal(r.stdout.toString().split(' ')[0], sha(plain));
      assert.ok((c.reads.get(inos.plain) ?? 0) > before, 'plain was served cached (READs in JavaScript)');
      const onFile = addon().readOpenTable(table);
      assert.equal(onFile.ok, true, onFile.problem);
      assert.equal(onFile.overflowed, true);
      assert.deepEqual(onFile.opens, [], 'no open left');
      assert.equal(onFile.registered.length, 1, "blob's registration only (plain's found no record)");
      assert.equal(onFile.registered[0]?.[0], inos.blob);

      // A successor reading it (a release, then no files in the state, as after a crash) keeps the file marked incomplete
      // and answers no OPEN passthrough anew: blob, registered, is served cached too.
      const fds = first.handoverFds();
      holder = await holdFds(fds);
      await first.release();
      const state = JSON.parse(JSON.stringify(first.handoverState())) as SessionHandover;
      delete state.files;
      const taken = takeBack(holder, fds.length);
      opened.push(...taken);
      adopted = FuseSession.adopt(taken, state, c.handlers, { entryTimeout: 0, attrTimeout: 0, adoptedInos: [inos.blob, inos.plain], openModesFile: table });
      st = adopted.stats().openModes;
      assert.equal(st.restoredFrom, 'table', st.problem);
      assert.equal(st.overflowed, true);
      const blobReads = c.reads.get(inos.blob) ?? 0;
      const b = await run('sh', ['-c', `sha256sum < ${where('blob')}`]);
      assert.equal(b.status, 0, b.stderr.toString());
      assert.ok((c.reads.get(inos.blob) ?? 0) > blobReads, 'blob served cached by the successor');
      assert.equal(addon().readOpenTable(table).overflowed, true, 'the mark is kept for the next one');
    } finally {
      holder?.kill('SIGKILL');
      await cleanUp(first, undefined);
      first = undefined;
    }
  });

  it('control: a damaged open-modes file is ignored (with the reason), and then a new open of blob fails EIO', async (t) => {
    const h = await crashed();
    if (!h || !mnt || !files) return t.skip('the kernel did not offer FUSE_PASSTHROUGH');
    const bytes = readFileSync(h.table);
    bytes.writeUInt32LE(0xffffffff, 12); // capacity beyond the file
    writeFileSync(h.table, bytes);
    const toy = new ToyFs(1n);
    toy.file(1n, 'blob', Buffer.alloc(h.blob.length, 0x2a));
    toy.file(1n, 'plain', h.plain);
    adopted = FuseSession.adopt(h.fds, h.state, toy.handlers(), { entryTimeout: 0, attrTimeout: 0, adoptedInos: [h.inos.blob, h.inos.plain], openModesFile: h.table });
    const st = adopted.stats().openModes;
    assert.equal(st.restoredFrom, 'none');
    assert.match(st.problem, /capacity/);
    assert.deepEqual(await files.read(), [sha(h.blob), sha(h.plain)], 'files open already are not affected');
    const r = await run('sh', ['-c', `cat ${join(mnt.path, 'blob')} > /dev/null`]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr.toString(), /Input\/output error/);
    // plain, which nothing registered, opens as before.
    const p = await run('sh', ['-c', `sha256sum < ${join(mnt.path, 'plain')}`]);
    assert.equal(p.stdout.toString().split(' ')[0], sha(h.plain));
  });
});
