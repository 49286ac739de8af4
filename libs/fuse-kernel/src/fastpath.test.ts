import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Errno } from '@strata/errors';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { blockFor, cleanUp, run, runNode, skipReason, tempMountpoint, waitFor } from './mount-harness';
import type { Attr, FuseHandlers } from './types';

const S_IFREG = 0o100000;

describe('the native cache', { skip: skipReason() }, () => {
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;

  afterEach(async () => {
    await cleanUp(session, mnt);
    session = undefined;
    mnt = undefined;
  });

  it('answers cached paths while the JavaScript thread is blocked', async () => {
    const toy = new ToyFs(1n);
    const etc = toy.mkdir(1n, 'etc');
    const conf = toy.file(etc.ino, 'app.conf', Buffer.from('x=1\n'));
    conf.xattrs.push([Buffer.from('user.origin'), Buffer.from('layer-2')]);
    toy.symlink(etc.ino, 'current', Buffer.from([0x76, 0x32, 0xff]));
    const deep = toy.mkdir(toy.mkdir(1n, 'a').ino, 'b');
    toy.file(deep.ino, 'c', Buffer.alloc(10));

    mnt = tempMountpoint();
    session = await FuseSession.mount(mnt.path, toy.handlers(), { rootAttr: toy.nodes.get(1n)?.attr });
    // What the agent would learn from a Walk: listings, link targets, xattrs, statfs.
    for (const node of toy.nodes.values()) {
      if (node.children) session.cacheListing(node.ino, toy.listing(node.ino));
      if (node.target) session.cacheLink(node.ino, node.target);
      session.cacheXattrs(node.ino, node.xattrs);
      session.cacheAttr(node.ino, node.attr);
    }
    session.cacheStatfs({ blocks: 10, bfree: 5, bavail: 5, files: 100, ffree: 50, bsize: 4096 });
    const before = session.stats();

    const child = runNode(
      `const fs = require('fs'); const cp = require('child_process'); const d = process.argv[1];
       const out = {
         conf: fs.lstatSync(d + '/etc/app.conf').size,
         c: fs.statSync(d + '/a/b/c').size,
         list: fs.readdirSync(d + '/etc').sort(),
         link: fs.readlinkSync(d + '/etc/current', { encoding: 'buffer' }).toString('hex'),
         missing: (() => { try { fs.statSync(d + '/etc/nope'); } catch (e) { return e.code; } })(),
         xattr: cp.execFileSync('getfattr', ['--only-values', '-n', 'user.origin', d + '/etc/app.conf']).toString(),
         statfs: cp.execFileSync('stat', ['-f', '-c', '%b', d]).toString().trim(),
       };
       out.end = Date.now();
       process.stdout.write(JSON.stringify(out));`,
      [mnt.path],
    );
    const start = Date.now();
    blockFor(2000);
    const r = await child;
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.toString()) as Record<string, unknown>;
    assert.deepEqual(
      { ...out, end: undefined },
      {
        conf: 4,
        c: 10,
        list: ['app.conf', 'current'],
        link: '7632ff',
        missing: 'ENOENT',
        xattr: 'layer-2',
        statfs: '10',
        end: undefined,
      },
    );
    assert.ok((out.end as number) - start < 1500, `the child needed ${(out.end as number) - start} ms`);
    assert.equal(toy.calls.size, 0, `reached JavaScript: ${[...toy.calls.keys()].join(', ')}`);
    const after = session.stats();
    assert.equal(after.toJs, before.toJs);
    assert.ok(after.native > before.native);
  });

  it('lets LIVE answers expire: after cacheTtl the handler is asked again', async () => {
    const toy = new ToyFs(1n);
    const f = toy.file(1n, 'f', Buffer.from('1'));
    mnt = tempMountpoint();
    // Kernel timeouts 0: every stat reaches the session.
    session = await FuseSession.mount(mnt.path, toy.handlers(), {
      rootAttr: toy.nodes.get(1n)?.attr,
      entryTimeout: 0,
      attrTimeout: 0,
    });
    session.cacheEntry(1n, Buffer.from('f'), { ino: f.ino, attr: f.attr, cacheTtl: 0.3 });
    const first = await run('stat', ['-c', '%s', join(mnt.path, 'f')]);
    assert.equal(first.stdout.toString().trim(), '1');
    assert.equal(toy.called('lookup') + toy.called('getattr'), 0);
    await new Promise((r) => setTimeout(r, 400));
    const second = await run('stat', ['-c', '%s', join(mnt.path, 'f')]);
    assert.equal(second.stdout.toString().trim(), '1');
    assert.ok(toy.called('lookup') + toy.called('getattr') > 0);
  });

  it('keeps the cache bounded after 100k distinct lookups are forgotten', async (t) => {
    const N = 100_000;
    const LIMIT = 1000;
    const attrOf = (ino: bigint): Attr => ({ ino, mode: S_IFREG | 0o644, size: 1, mtimeNs: 1n });
    let forgotten = 0;
    const handlers: FuseHandlers = {
      lookup: (parent, name) => {
        const m = /^n(\d+)$/.exec(name.toString());
        if (parent !== 1n || !m) return -Errno.ENOENT;
        const ino = 1000n + BigInt(m[1]);
        return { ino, attr: attrOf(ino), entryTimeout: 3600, attrTimeout: 3600, cacheTtl: Infinity };
      },
      getattr: (ino) => ({ attr: ino === 1n ? { mode: 0o040755 } : attrOf(ino) }),
      readdir: () => -Errno.EACCES,
      read: () => -Errno.EIO,
      forget: (inos) => {
        forgotten += inos.length;
      },
    };
    mnt = tempMountpoint();
    session = await FuseSession.mount(mnt.path, handlers, { cacheLimit: LIMIT, rootAttr: { mode: 0o040755 } });
    const r = await runNode(
      `const fs = require('fs'); const d = process.argv[1]; const n = Number(process.argv[2]);
       const t = process.hrtime.bigint();
       for (let i = 0; i < n; i++) fs.lstatSync(d + '/n' + i);
       process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e6));`,
      [mnt.path, String(N)],
      { timeoutMs: 40_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    t.diagnostic(`${N} lstat of distinct names through JavaScript: ${Number(r.stdout.toString()).toFixed(0)} ms`);
    const loaded = session.stats();
    // Another test's drop_caches may already have made the kernel forget some.
    assert.ok(loaded.nodes + forgotten >= N, `kernel holds ${loaded.nodes} nodes, forgot ${forgotten}`);
    // The kernel's own references bound what it holds; dropping its caches forgets them.
    await run('sh', ['-c', 'echo 2 > /proc/sys/vm/drop_caches']);
    const s = session;
    await waitFor(() => s.stats().nodes < 100, 10_000, 'forgets');
    // The forget events reach JavaScript in batches after the native side has counted them.
    await waitFor(() => forgotten >= N - 100, 5_000, 'forget events');
    const after = s.stats();
    assert.ok(after.cacheWeight <= LIMIT, `weight ${after.cacheWeight}`);
    assert.ok(after.cached <= LIMIT + after.nodes + 2, `cached ${after.cached}`);
    assert.ok(forgotten >= N - 100, `forget reported ${forgotten}`);
  });

  it('answers a name missing from a cached listing with ENOENT', async () => {
    const toy = new ToyFs(1n);
    toy.file(1n, 'present', Buffer.alloc(0));
    mnt = tempMountpoint();
    session = await FuseSession.mount(mnt.path, toy.handlers(), { rootAttr: toy.nodes.get(1n)?.attr });
    session.cacheListing(1n, toy.listing(1n));
    const r = await runNode(
      `const fs = require('fs'); const out = [];
       for (const n of ['present', 'absent']) { try { fs.statSync(process.argv[1] + '/' + n); out.push('ok'); } catch (e) { out.push(e.code); } }
       process.stdout.write(out.join(','));`,
      [mnt.path],
    );
    assert.equal(r.stdout.toString(), 'ok,ENOENT');
    assert.equal(toy.called('lookup'), 0);
  });
});
