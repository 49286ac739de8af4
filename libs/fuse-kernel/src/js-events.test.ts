import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { cleanUp, run, skipReason, tempMountpoint, waitFor } from './mount-harness';
import type { Caller } from './types';

/** `nobody`'s uid on this host, for an open made as another user. */
function nobody(): number | undefined {
  const r = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : undefined;
}

describe('opens told to JavaScript after the fact (audit)', { skip: skipReason() }, () => {
  const toy = new ToyFs(1n);
  const opened: Array<{ ino: bigint; fh: bigint; caller: Caller }> = [];
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  let file: bigint;

  before(async () => {
    file = toy.file(1n, 'evidence.log', Buffer.from('kept\n'), { attr: { mode: 0o100644 } }).ino;
    mnt = tempMountpoint();
    const handlers = { ...toy.handlers(), opened: (ino: bigint, fh: bigint, caller: Caller) => opened.push({ ino, fh, caller }) };
    session = await FuseSession.mount(mnt.path, handlers, { rootAttr: { mode: 0o040755 }, allowOther: true });
  });

  after(async () => cleanUp(session, mnt));

  it('names the node and the caller (uid, gid, pid) of every open, each with its own fh', async () => {
    const path = join(mnt!.path, 'evidence.log');
    for (let i = 0; i < 2; i++) assert.equal((await run('cat', [path])).stdout.toString(), 'kept\n');
    await waitFor(() => opened.length >= 2, 5000, 'two open events');
    const ours = opened.filter((o) => o.ino === file);
    assert.equal(ours.length, 2);
    assert.notEqual(ours[0].fh, ours[1].fh);
    for (const o of ours) {
      assert.equal(o.caller.uid, 0);
      assert.ok(o.caller.pid > 0);
    }
  });

  it('reports the host user who opened it', async (t) => {
    const uid = nobody();
    if (uid === undefined) return t.skip('no user nobody');
    opened.length = 0;
    const r = await run('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', 'cat', join(mnt!.path, 'evidence.log')]);
    assert.equal(r.status, 0, r.stderr.toString());
    await waitFor(() => opened.some((o) => o.ino === file), 5000, 'open event');
    assert.equal(opened.find((o) => o.ino === file)?.caller.uid, uid);
  });
});

describe('the inos the session may still name', { skip: skipReason() }, () => {
  // Answers kept natively (as a sealed layer's are): cached entries name their inos too.
  const toy = new ToyFs(1n, { cacheTtl: Infinity });
  const N = 300;
  const files: bigint[] = [];
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;

  before(async () => {
    const dir = toy.mkdir(1n, 'd');
    for (let i = 0; i < N; i++) files.push(toy.file(dir.ino, `f${i}`, Buffer.from('x')).ino);
    mnt = tempMountpoint();
    session = await FuseSession.mount(mnt.path, toy.handlers(), { rootAttr: { mode: 0o040755 }, cacheLimit: 20, entryTimeout: 3600, attrTimeout: 3600 });
  });

  after(async () => cleanUp(session, mnt));

  it('holds what the kernel looked up, and lets go once the kernel forgot it and the cache bound evicted it', async () => {
    const s = session!;
    const d = join(mnt!.path, 'd');
    const r = await run('sh', ['-c', `for i in $(seq 0 ${N - 1}); do stat -c %i ${d}/f$i > /dev/null; done`]);
    assert.equal(r.status, 0, r.stderr.toString());
    const held = new Set(s.liveInos());
    assert.ok(files.every((f) => held.has(f)), 'every file the kernel holds is live');
    assert.ok(held.has(1n), 'the root always');
    await run('sh', ['-c', 'echo 2 > /proc/sys/vm/drop_caches']);
    await waitFor(() => s.stats().nodes < 10, 10_000, 'the kernel forgets');
    const after = new Set(s.liveInos());
    const still = files.filter((f) => after.has(f)).length;
    assert.ok(still <= 40, `${still} of ${N} files still live after the kernel forgot them (cache bound 20)`);
  });
});
