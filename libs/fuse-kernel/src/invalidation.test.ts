import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Errno } from '@strata/errors';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import type { ToyNode } from './toy-fs';
import { cleanUp, runNode, skipReason, tempMountpoint, waitFor } from './mount-harness';
import type { FuseHandlers } from './types';

const HOUR = 3600;

/** stat and read of argv[1]: "size|content", or the error code. */
const STAT_READ = `const fs = require('fs');
  try { const st = fs.statSync(process.argv[1]); process.stdout.write(st.size + '|' + fs.readFileSync(process.argv[1])); }
  catch (e) { process.stdout.write(e.code); }`;

/** Lists argv[1], then stats argv[2] in it: its size (what ls -l does). */
const LIST_STAT = `const fs = require('fs'); const dir = process.argv[1];
  fs.readdirSync(dir); process.stdout.write(String(fs.statSync(dir + '/' + process.argv[2]).size));`;

async function statRead(path: string): Promise<string> {
  const r = await runNode(STAT_READ, [path]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.toString();
}

/** Changes a toy file's content and size, as a LIVE layer's writer would. */
function rewrite(toy: ToyFs, node: ToyNode, content: string): void {
  node.data = Buffer.from(content);
  node.attr = { ...node.attr, size: node.data.length, mtimeNs: 1_800_000_000_000_000_000n };
  toy.nodes.set(node.ino, node);
}

describe('kernel invalidation (keepCache, kernel timeouts of an hour, everything cached natively)', { skip: skipReason() }, () => {
  // Handler answers cached natively for ever: only invalidation can make a change visible.
  const toy = new ToyFs(1n, { cacheTtl: Infinity });
  const live = toy.file(1n, 'live', Buffer.from('old content\n'));
  toy.file(1n, 'gone', Buffer.from('soon removed\n'));
  const dir = toy.mkdir(1n, 'dir');
  toy.file(dir.ino, 'slow', Buffer.from('x'));
  const slowRead = toy.file(1n, 'slow-read', Buffer.from('slow data\n'));
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  let root = '';
  // A LOOKUP of dir/slow, or a READ of slow-read, waits here until the test lets it go.
  const held: { lookup?: () => void; read?: () => void } = {};

  before(async () => {
    const base = toy.handlers();
    const handlers: FuseHandlers = {
      ...base,
      lookup: (parent, name, caller) => {
        if (parent === dir.ino && name.toString() === 'slow') {
          return new Promise((resolve) => (held.lookup = () => resolve(-Errno.ENOENT)));
        }
        return base.lookup(parent, name, caller);
      },
      read: (ino, fh, offset, size, caller) => {
        if (ino === slowRead.ino && held.read === undefined) {
          // Only the first: the reader's page may be dropped by the notice and read again.
          return new Promise((resolve) => (held.read = () => resolve(toy.nodes.get(ino)?.data ?? Buffer.alloc(0))));
        }
        return base.read(ino, fh, offset, size, caller);
      },
    };
    mnt = tempMountpoint();
    root = mnt.path;
    session = await FuseSession.mount(mnt.path, handlers, {
      rootAttr: toy.nodes.get(1n)?.attr,
      keepCache: true,
      entryTimeout: HOUR,
      attrTimeout: HOUR,
    });
  });

  after(async () => {
    await cleanUp(session, mnt);
  });

  it("makes a file's new size and content visible at once after invalidateInode", async () => {
    const s = session as FuseSession;
    const path = join(root, 'live');
    assert.equal(await statRead(path), '12|old content\n');
    rewrite(toy, live, 'new content, and longer\n');
    // Kernel and native cache both still answer the old size.
    assert.match(await statRead(path), /^12\|/);
    const getattrs = toy.called('getattr');
    assert.equal(await s.invalidateInode(live.ino), true);
    assert.equal(await statRead(path), '24|new content, and longer\n');
    assert.ok(toy.called('getattr') > getattrs, 'attributes asked for again');
  });

  it('makes a removed name ENOENT at once after invalidateEntry', async () => {
    const s = session as FuseSession;
    const path = join(root, 'gone');
    const listed = await runNode(`require('fs').readdirSync(process.argv[1])`, [root]); // a native listing too
    assert.equal(listed.status, 0, listed.stderr);
    assert.match(await statRead(path), /^13\|/);
    toy.nodes.get(1n)?.children?.delete('gone');
    assert.match(await statRead(path), /^13\|/); // the kernel's dentry and the native entry still have it
    assert.equal(await s.invalidateEntry(1n, Buffer.from('gone')), true);
    assert.equal(await statRead(path), 'ENOENT');
  });

  it('settles false when the kernel holds nothing to invalidate', async () => {
    const s = session as FuseSession;
    assert.equal(await s.invalidateInode(987_654_321n), false); // no node: nothing written
    assert.equal(await s.invalidateEntry(1n, Buffer.from('never-looked-up')), false); // the kernel answers ENOENT
    assert.equal(s.stats().notices, 0);
  });

  it('does not wait for a LOOKUP in the same directory that waits for this thread', async () => {
    const s = session as FuseSession;
    const child = runNode(STAT_READ, [join(root, 'dir', 'slow')]);
    await waitFor(() => held.lookup !== undefined, 5000, 'the lookup of dir/slow');
    // The kernel takes the directory's lock for this notice, which the lookup holds.
    const noticed = s.invalidateEntry(dir.ino, Buffer.from('other'));
    held.lookup?.();
    const r = await child;
    assert.equal(r.stdout.toString(), 'ENOENT');
    assert.equal(await noticed, false);
  });

  it('does not wait for a READ of the same file that waits for this thread', async () => {
    const s = session as FuseSession;
    const child = runNode(STAT_READ, [join(root, 'slow-read')]);
    await waitFor(() => held.read !== undefined, 5000, 'the read of slow-read');
    // Invalidating the page cache waits for the page the read has locked.
    const noticed = s.invalidateInode(slowRead.ino);
    held.read?.();
    const r = await child;
    assert.equal(r.stdout.toString(), '10|slow data\n');
    assert.equal(await noticed, true);
  });
});

describe('invalidation and listings cached natively (no keepCache)', { skip: skipReason() }, () => {
  const toy = new ToyFs(1n, { cacheTtl: Infinity });
  const live = toy.file(1n, 'live', Buffer.from('0123456789'));
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;

  before(async () => {
    mnt = tempMountpoint();
    session = await FuseSession.mount(mnt.path, toy.handlers(), {
      rootAttr: toy.nodes.get(1n)?.attr,
      entryTimeout: HOUR,
      attrTimeout: HOUR,
    });
  });

  after(async () => {
    await cleanUp(session, mnt);
  });

  it('a listing made before invalidateInode no longer hands the kernel the old attributes', async () => {
    const s = session as FuseSession;
    const root = (mnt as { path: string }).path;
    const first = await runNode(LIST_STAT, [root, 'live']);
    assert.equal(first.stdout.toString(), '10');
    rewrite(toy, live, '0123456789abcdef');
    assert.equal(await s.invalidateInode(live.ino), true);
    // Every opendir reads the (natively cached) listing again as READDIRPLUS;
    // it must not put the old size back into the kernel.
    const second = await runNode(LIST_STAT, [root, 'live']);
    assert.equal(second.stdout.toString(), '16');
  });
});

describe('unmounting while a notice waits in the kernel', { skip: skipReason() }, () => {
  it('ends the session; the notice settles false and the stuck caller gets an error', async () => {
    const toy = new ToyFs(1n, { cacheTtl: Infinity });
    const dir = toy.mkdir(1n, 'dir');
    const base = toy.handlers();
    let asked = false;
    const handlers: FuseHandlers = {
      ...base,
      lookup: (parent, name, caller) => {
        if (parent === dir.ino) {
          asked = true;
          return new Promise(() => undefined); // never answers
        }
        return base.lookup(parent, name, caller);
      },
    };
    const mnt = tempMountpoint();
    let s: FuseSession | undefined;
    try {
      s = await FuseSession.mount(mnt.path, handlers, { rootAttr: toy.nodes.get(1n)?.attr, entryTimeout: HOUR });
      const child = runNode(STAT_READ, [join(mnt.path, 'dir', 'stuck')]);
      await waitFor(() => asked, 5000, 'the lookup of dir/stuck');
      const noticed = s.invalidateEntry(dir.ino, Buffer.from('other'));
      await s.unmount();
      assert.equal(await noticed, false);
      const r = await child;
      assert.match(r.stdout.toString(), /^E[A-Z]+$/);
      s = undefined;
    } finally {
      await cleanUp(s, mnt);
    }
  });
});
