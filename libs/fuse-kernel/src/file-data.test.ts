import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { Errno, isStrataError } from '@strata/errors';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { mountOverStore, openFdCount, readRanges, run, runNode, shaCachedAndDirect, skipReason, within, type StoreMount } from './mount-harness';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** argv[2] random 4 KiB O_DIRECT reads of argv[1] (every one a READ request); prints each block's sha256. */
const DIRECT_BLOCKS = `const fs = require('fs'); const crypto = require('crypto');
  const fd = fs.openSync(process.argv[1], fs.constants.O_RDONLY | fs.constants.O_DIRECT);
  const pages = Math.floor(fs.fstatSync(fd).size / 4096); const b = Buffer.alloc(4096); let x = 7; const out = [];
  for (let i = 0; i < Number(process.argv[2]); i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const n = fs.readSync(fd, b, 0, 4096, (x % pages) * 4096);
    out.push(n + ':' + crypto.createHash('sha256').update(b.subarray(0, n)).digest('hex'));
  }
  process.stdout.write(out.join('\\n'));`;

describe('file data served by pread(2) without JavaScript', { skip: skipReason() }, () => {
  const toy = new ToyFs(1n);
  // 3 MiB and a partial last page. What read() would answer has the same
  // size and other bytes, so every check also says who served it.
  const data = randomBytes(3 * 1024 * 1024 + 1234);
  const blob = toy.file(1n, 'blob', Buffer.alloc(data.length, 0x2a));
  const racy = toy.file(1n, 'racy', Buffer.alloc(data.length, 0x2a));
  const writeOnly = toy.file(1n, 'write-only', Buffer.alloc(100, 0x2a));
  let m: StoreMount | undefined;
  let session: FuseSession | undefined;
  let root = '';
  let store = '';

  before(async () => {
    m = await mountOverStore(toy, { blob: data, short: data.subarray(0, 100) }, { dataServing: 'pread' });
    ({ session, root, store } = m);
  });

  after(() => m?.close());

  it('registers with pread under dataServing pread (the caller may close its fd)', () => {
    const s = session as FuseSession;
    const fd = openSync(join(store, 'blob'), 'r');
    try {
      assert.equal(s.setFileData(blob.ino, fd), 'pread');
    } finally {
      closeSync(fd);
    }
    const st = s.stats();
    assert.equal(st.fileData, 1);
    assert.equal(st.backings, 0);
  });

  it('serves the content byte-exact with no READ reaching JavaScript', async () => {
    const s = session as FuseSession;
    const before = s.stats().preadReads;
    const path = join(root, 'blob');
    assert.deepEqual(await shaCachedAndDirect(path), [sha(data), sha(data)]);

    const size = data.length;
    const lastPage = Math.floor(size / 4096) * 4096;
    const ranges: Array<[number, number]> = [
      [lastPage, 4096], // the partial last page
      [size - 10, 100], // across the end: short
      [size, 10], // at the end: nothing
      [size + 5000, 4096], // past it: nothing
      [0, 1],
      [4095, 2], // across a page boundary
    ];
    for (let i = 0; i < 40; i++) ranges.push([Math.floor(Math.random() * size), 1 + Math.floor(Math.random() * 300_000)]);
    const got = await readRanges(path, ranges);
    ranges.forEach(([off, len], i) => {
      assert.ok(got[i].equals(data.subarray(Math.min(off, size), Math.min(off + len, size))), `read ${off}+${len}`);
    });
    assert.equal(toy.called('read'), 0);
    assert.ok(s.stats().preadReads > before);
  });

  it('answers a READ EIO when the registered file cannot be read, and counts it', async () => {
    const s = session as FuseSession;
    const fd = openSync(join(store, 'short'), 'w'); // write-only: pread(2) fails with EBADF
    try {
      assert.equal(s.setFileData(writeOnly.ino, fd), 'pread');
    } finally {
      closeSync(fd);
    }
    const errors = s.stats().preadErrors;
    const r = await run('cat', [join(root, 'write-only')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Input\/output error/);
    assert.ok(s.stats().preadErrors > errors);
    assert.equal(toy.called('read'), 0);
    s.clearFileData(writeOnly.ino);
  });

  it('refuses a bad fd with EBADF', () => {
    const s = session as FuseSession;
    assert.throws(() => s.setFileData(blob.ino, 987654), (e: unknown) => isStrataError(e) && e.errno === Errno.EBADF);
  });

  it('keeps every READ whole while registrations come and go under it', async () => {
    const s = session as FuseSession;
    const filler = sha(Buffer.alloc(4096, 0x2a));
    const blocks = new Set<string>();
    for (let i = 0; i + 4096 <= data.length; i += 4096) blocks.add(sha(data.subarray(i, i + 4096)));
    const fd = openSync(join(store, 'blob'), 'r');
    let toggles = 0;
    let done = false;
    const child = runNode(DIRECT_BLOCKS, [join(root, 'racy'), '3000'], { timeoutMs: 60_000 }).finally(() => (done = true));
    try {
      while (!done) {
        if (toggles % 2 === 0) s.setFileData(racy.ino, fd);
        else s.clearFileData(racy.ino);
        toggles++;
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      closeSync(fd);
      s.clearFileData(racy.ino);
    }
    const r = await child;
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.toString().split('\n');
    assert.equal(lines.length, 3000);
    for (const line of lines) {
      const [n, hash] = line.split(':');
      assert.equal(n, '4096');
      assert.ok(hash === filler || blocks.has(hash), 'a block from either the file or read()');
    }
    assert.ok(toggles > 1);
  });

  it('sends READs back to JavaScript after clearFileData', async () => {
    const s = session as FuseSession;
    s.clearFileData(blob.ino);
    assert.equal(s.stats().fileData, 0);
    const r = await run('head', ['-c', '4', join(root, 'blob')]);
    assert.equal(r.stdout.toString(), '****');
    assert.ok(toy.called('read') > 0);
  });
});

describe('choosing how file data is served', { skip: skipReason() }, () => {
  const data = randomBytes(256 * 1024 + 5);
  let store = '';

  async function withMount(
    options: Parameters<typeof FuseSession.mount>[2],
    body: (s: FuseSession, toy: ToyFs, ino: bigint, root: string) => Promise<void>,
  ): Promise<void> {
    const toy = new ToyFs(1n);
    const file = toy.file(1n, 'blob', Buffer.alloc(data.length, 0x2a));
    const m = await mountOverStore(toy, { blob: data }, options);
    try {
      store = m.store;
      await body(m.session, toy, file.ino, m.root);
    } finally {
      await m.close();
    }
  }

  it("'auto' uses passthrough where the kernel agreed to it", async (t) => {
    await withMount({}, async (s, toy, ino, root) => {
      if (!s.passthroughAvailable) return t.skip('the kernel did not offer FUSE_PASSTHROUGH');
      const fd = openSync(join(store, 'blob'), 'r');
      try {
        assert.equal(s.setFileData(ino, fd), 'passthrough');
      } finally {
        closeSync(fd);
      }
      const r = await run('sh', ['-c', `cat ${join(root, 'blob')} | sha256sum`]);
      assert.equal(r.stdout.toString().split(' ')[0], sha(data));
      const st = s.stats();
      assert.deepEqual([st.fileData, st.backings, st.preadReads, toy.called('read')], [1, 1, 0, 0]);
    });
  });

  it('keeps an inode in one open mode while files of it are open (the kernel would fail a mixed open with EIO)', async (t) => {
    await withMount({}, async (s, toy, ino, root) => {
      if (!s.passthroughAvailable) return t.skip('the kernel did not offer FUSE_PASSTHROUGH');
      const file = join(root, 'blob');
      const cachedSum = sha(Buffer.alloc(data.length, 0x2a));
      const sum = async (): Promise<string> => {
        const r = await run('sh', ['-c', `sha256sum < ${file}`]);
        assert.equal(r.status, 0, r.stderr.toString());
        return r.stdout.toString().split(' ')[0];
      };
      const register = (): void => {
        const fd = openSync(join(store, 'blob'), 'r');
        try {
          s.setFileData(ino, fd);
        } finally {
          closeSync(fd);
        }
      };
      const holders: ReturnType<typeof spawn>[] = [];
      t.after(() => holders.forEach((h) => h.kill()));
      const hold = async (): Promise<ReturnType<typeof spawn>> => {
        const h = spawn('sh', ['-c', `exec 3< ${file}; echo open; read x; exec 3<&-`], { stdio: ['pipe', 'pipe', 'inherit'] });
        holders.push(h);
        await within(new Promise<void>((resolve) => h.stdout?.once('data', () => resolve())), 10_000, 'the holder to open the file');
        return h;
      };
      const release = async (h: ReturnType<typeof spawn>): Promise<void> => {
        h.stdin?.end('\n');
        if (h.exitCode === null) await within(new Promise((resolve) => h.once('exit', resolve)), 10_000, 'the holder to exit');
      };
      // A reader holding the file open (through read(), before any registration) across the registration.
      const held = await hold();
      register();
      assert.equal(await sum(), cachedSum, 'opened like the file already open');
      await release(held);
      // Closed (its RELEASE may trail the close a little): later opens pass through, and keep doing so while one is open, registration cleared or not.
      let through = await hold();
      for (let i = 0; i < 50 && (await sum()) !== sha(data); i++) {
        await release(through);
        through = await hold();
      }
      const readsBefore = toy.called('read');
      s.clearFileData(ino);
      assert.equal(await sum(), sha(data), 'passthrough like the file still open');
      await release(through);
      assert.equal(toy.called('read'), readsBefore);
      let back = '';
      for (let i = 0; i < 50 && back !== cachedSum; i++) back = await sum();
      assert.equal(back, cachedSum, 'read() again once the passthrough opens are closed and nothing is registered');
    });
  });

  it("'auto' uses pread where passthrough was not negotiated", async () => {
    await withMount({ passthrough: false }, async (s, toy, ino, root) => {
      const fd = openSync(join(store, 'blob'), 'r');
      try {
        assert.equal(s.setFileData(ino, fd), 'pread');
      } finally {
        closeSync(fd);
      }
      const r = await run('sh', ['-c', `cat ${join(root, 'blob')} | sha256sum`]);
      assert.equal(r.stdout.toString().split(' ')[0], sha(data));
      assert.equal(toy.called('read'), 0);
      assert.ok(s.stats().preadReads > 0);
    });
  });

  it("'passthrough' refuses with EOPNOTSUPP where it was not negotiated", async () => {
    await withMount({ passthrough: false, dataServing: 'passthrough' }, async (s, _toy, ino) => {
      const fd = openSync(join(store, 'blob'), 'r');
      try {
        assert.throws(() => s.setFileData(ino, fd), (e: unknown) => isStrataError(e) && e.errno === Errno.EOPNOTSUPP);
      } finally {
        closeSync(fd);
      }
      assert.equal(s.stats().fileData, 0);
    });
  });
});

describe('file data and file descriptors', { skip: skipReason() }, () => {
  it('leaves no fd behind: replaced, cleared, evicted and unmounted registrations all close theirs', async () => {
    const toy = new ToyFs(1n);
    const seen = toy.file(1n, 'seen', Buffer.from('read() !!\n'));
    await run('true', []); // whatever a first child opens for good (libuv's signal pipe) is open from here on
    const start = openFdCount();
    const limit = 100;
    const m = await mountOverStore(toy, { f: Buffer.from('file data\n') }, { dataServing: 'pread', cacheLimit: limit });
    try {
      const s = m.session;
      const mounted = openFdCount();
      const fd = openSync(join(m.store, 'f'), 'r');
      // One the kernel references (a child reads it), registered twice: the second replaces the first.
      s.setFileData(seen.ino, fd);
      s.setFileData(seen.ino, fd);
      const r = await run('cat', [join(m.root, 'seen')]);
      assert.equal(r.stdout.toString(), 'file data\n');
      // 2000 the kernel never saw: they sit in the bounded part of the cache and are evicted from it.
      for (let i = 0; i < 2000; i++) s.setFileData(1000n + BigInt(i), fd);
      for (let i = 0; i < 2000; i += 2) s.clearFileData(1000n + BigInt(i));
      closeSync(fd);
      const registered = s.stats().fileData;
      assert.ok(registered <= limit + 1, `${registered} registrations kept`);
      assert.equal(openFdCount() - mounted, registered);
      s.clearFileData(seen.ino);
      assert.equal(openFdCount() - mounted, registered - 1);
      await m.unmount();
      assert.equal(openFdCount(), start);
    } finally {
      await m.close();
    }
  });
});

describe('pread registrations are bounded (preadFiles)', { skip: skipReason() }, () => {
  it('lets the least recently read go past the bound, with its fd; READs of it come to read() again', async () => {
    const toy = new ToyFs(1n, { cacheTtl: Infinity, entryTimeout: 3600, attrTimeout: 3600 });
    const nodes = Array.from({ length: 5 }, (_, i) => toy.file(1n, `f${i}`, Buffer.from(`read() ${i}\n`)));
    const m = await mountOverStore(toy, Object.fromEntries(nodes.map((_, i) => [`f${i}`, Buffer.from(`pread  ${i}\n`)])), { dataServing: 'pread', preadFiles: 3 });
    try {
      const s = m.session;
      const mounted = openFdCount();
      const register = (i: number): void => {
        m.withFds([`f${i}`], ([fd]) => s.setFileData(nodes[i].ino, fd));
      };
      for (const i of [0, 1, 2]) register(i);
      // f0 read (O_DIRECT: a READ each time) after f1 and f2 were registered: f1 is now the least recently read.
      const direct = (i: number): Promise<string> =>
        runNode(`const fs=require('fs');const fd=fs.openSync(process.argv[1],fs.constants.O_RDONLY|fs.constants.O_DIRECT);const b=Buffer.alloc(4096);process.stdout.write(b.subarray(0,fs.readSync(fd,b,0,4096,0)).toString())`, [
          join(m.root, `f${i}`),
        ]).then((r) => r.stdout.toString());
      assert.equal(await direct(0), 'pread  0\n');
      register(3);
      register(4);
      const st = s.stats();
      assert.equal(st.fileData, 3);
      assert.equal(st.preadEvictions, 2);
      assert.equal(openFdCount() - mounted, 3, 'the let-go registrations closed their fds');
      // Kept: f0 (read), f3, f4; let go: f1, f2.
      assert.deepEqual(await Promise.all([0, 1, 2, 3, 4].map(direct)), ['pread  0\n', 'read() 1\n', 'read() 2\n', 'pread  3\n', 'pread  4\n']);
      await assert.rejects(FuseSession.mount(m.root, toy.handlers(), { preadFiles: 0 }), (e: unknown) => isStrataError(e) && e.errno === Errno.EINVAL);
    } finally {
      await m.close();
    }
  });
});
