import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Errno, isStrataError } from '@strata/errors';
import { FuseSession, MAX_FILE_RUNS } from './session';
import { ToyFs } from './toy-fs';
import type { FileRun } from './types';
import { mountOverStore, openFdCount, readRanges, run, runNode, shaCachedAndDirect, skipReason, type StoreMount } from './mount-harness';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * A file of runs over two backing files and holes, at odd (unaligned)
 * lengths and file offsets, and the bytes it must read as.
 */
function layout(a: Buffer, b: Buffer): { runs: FileRun[]; expected: Buffer } {
  const runs: FileRun[] = [];
  const parts: Buffer[] = [];
  let at = 0;
  const push = (length: number, file?: number, fileOffset = 0): void => {
    runs.push(file === undefined ? { offset: at, length } : { offset: at, length, file, fileOffset });
    parts.push(file === undefined ? Buffer.alloc(length) : (file === 0 ? a : b).subarray(fileOffset, fileOffset + length));
    at += length;
  };
  push(70_001, 1, 12_345);
  push(5000); // hole
  push(1, 0, 7);
  push(1_048_576 + 3, 0, 100_000);
  push(300_000, 1, 0); // the same store file again, elsewhere
  push(2 * 1_048_576 + 17); // a hole wider than a READ
  push(4093, 0, a.length - 4093); // up to the store file's end
  push(123_457, 1, 500_000);
  return { runs, expected: Buffer.concat(parts) };
}

describe('file data as runs over store files, served by pread(2) without JavaScript', { skip: skipReason() }, () => {
  const toy = new ToyFs(1n);
  const a = randomBytes(2 * 1024 * 1024 + 999);
  const b = randomBytes(1024 * 1024 + 77);
  const { runs, expected } = layout(a, b);
  // What handlers.read would answer: the same size, other bytes.
  const image = toy.file(1n, 'image', Buffer.alloc(expected.length, 0x2a));
  const broken = toy.file(1n, 'broken', Buffer.alloc(10_000, 0x2a));
  const other = toy.file(1n, 'other', Buffer.alloc(10, 0x2a));
  let m: StoreMount | undefined;
  let session: FuseSession | undefined;
  let root = '';
  const withFds = <T>(names: string[], work: (fds: number[]) => T): T => (m as StoreMount).withFds(names, work);

  before(async () => {
    m = await mountOverStore(toy, { a, b, short: a.subarray(0, 5000) }, { dataServing: 'pread' });
    ({ session, root } = m);
  });

  after(() => m?.close());

  it('registers runs over two files (the caller may close its fds; each is dup\'ed)', () => {
    const s = session as FuseSession;
    const fds = openFdCount();
    withFds(['a', 'b'], (f) => s.setFileRuns(image.ino, f, runs, expected.length));
    assert.equal(openFdCount(), fds + 2);
    assert.equal(s.stats().fileData, 1);
  });

  it('reads byte-exact whole and at random offsets and sizes across run boundaries, short at EOF', async () => {
    const s = session as FuseSession;
    const before = s.stats().preadReads;
    const path = join(root, 'image');
    assert.deepEqual(await shaCachedAndDirect(path), [sha(expected), sha(expected)]);
    const size = expected.length;
    const ranges: Array<[number, number]> = [[size - 10, 100], [size, 10], [size + 9000, 4096], [0, 1]];
    for (const r of runs) ranges.push([Math.max(0, r.offset - 3), 7]); // every boundary
    for (let i = 0; i < 60; i++) ranges.push([Math.floor(Math.random() * size), 1 + Math.floor(Math.random() * 1_500_000)]);
    // Direct reads: every one a READ of the session, none from the page cache.
    const direct = await runNode(
      `const fs = require('fs'); const fd = fs.openSync(process.argv[1], fs.constants.O_RDONLY | fs.constants.O_DIRECT);
       const b = Buffer.alloc(1 << 20, 0); const out = [];
       for (let off = 0; off < ${size}; off += 1 << 20) { const n = fs.readSync(fd, b, 0, 1 << 20, off); out.push(b.subarray(0, n).toString('base64')); }
       process.stdout.write(out.join('\\n'));`,
      [path],
      { timeoutMs: 30_000 },
    );
    assert.equal(direct.status, 0, direct.stderr);
    assert.ok(Buffer.concat(direct.stdout.toString().split('\n').map((l) => Buffer.from(l, 'base64'))).equals(expected));
    const got = await readRanges(path, ranges);
    ranges.forEach(([off, len], i) => {
      assert.ok(got[i].equals(expected.subarray(Math.min(off, size), Math.min(off + len, size))), `read ${off}+${len}`);
    });
    assert.equal(toy.called('read'), 0);
    assert.ok(s.stats().preadReads > before);
  });

  it('answers EIO for a run past its store file\'s end, and counts it', async () => {
    const s = session as FuseSession;
    withFds(['short'], (f) =>
      s.setFileRuns(broken.ino, f, [{ offset: 0, length: 4000, file: 0 }, { offset: 4000, length: 6000, file: 0, fileOffset: 4000 }], 10_000),
    );
    const errors = s.stats().preadErrors;
    const r = await run('dd', [`if=${join(root, 'broken')}`, 'bs=4096', 'iflag=direct', 'status=none', 'of=/dev/null']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Input\/output error/);
    assert.ok(s.stats().preadErrors > errors);
    assert.equal(toy.called('read'), 0);
    s.clearFileData(broken.ino);
  });

  it('refuses bad run lists with EINVAL and keeps no fd', () => {
    const s = session as FuseSession;
    const einval = (e: unknown): boolean => isStrataError(e) && e.errno === Errno.EINVAL;
    const fds = openFdCount();
    const bad: Array<[FileRun[], number]> = [
      [[{ offset: 1, length: 9, file: 0 }], 10], // not from 0
      [[{ offset: 0, length: 5, file: 0 }, { offset: 6, length: 4 }], 10], // a gap
      [[{ offset: 0, length: 5 }, { offset: 4, length: 6 }], 10], // overlapping
      [[{ offset: 0, length: 5, file: 0 }], 10], // short of size
      [[{ offset: 0, length: 20, file: 0 }], 10], // past size
      [[{ offset: 0, length: 0 }, { offset: 0, length: 10 }], 10], // empty run
      [[{ offset: 0, length: 10, file: 1 }], 10], // no such file
      [[{ offset: 0, length: 10, file: 0, fileOffset: -1 }], 10], // negative
      [[{ offset: 0, length: 10.5, file: 0 }], 10.5], // not whole
      [[{ offset: 0, length: 10, file: 0, fileOffset: 2 ** 63 }], 10], // beyond 2^53
    ];
    withFds(['a'], (f) => {
      for (const [r, size] of bad) assert.throws(() => s.setFileRuns(other.ino, f, r, size), einval, JSON.stringify(r));
      const many: FileRun[] = Array.from({ length: MAX_FILE_RUNS + 1 }, (_, i) => ({ offset: i, length: 1 }));
      assert.throws(() => s.setFileRuns(other.ino, f, many, many.length), einval);
    });
    assert.throws(() => s.setFileRuns(other.ino, [987654], [{ offset: 0, length: 10, file: 0 }], 10), (e: unknown) => isStrataError(e) && e.errno === Errno.EBADF);
    assert.equal(openFdCount(), fds);
    // Nothing registered: READs of it still reach JavaScript.
    assert.equal(s.stats().fileData, 1);
  });

  it('serves a file of holes only, and an empty file', async () => {
    const s = session as FuseSession;
    s.setFileRuns(other.ino, [], [{ offset: 0, length: 10 }], 10);
    const r = await run('sh', ['-c', `od -An -tx1 ${join(root, 'other')} | tr -d ' \\n'`]);
    assert.equal(r.stdout.toString(), '00'.repeat(10));
    s.setFileRuns(other.ino, [], [], 0);
    assert.equal(toy.called('read'), 0);
    s.clearFileData(other.ino);
  });

  it('counts every dup against preadFiles: registrations of runs are let go to stay within it', async () => {
    const t = new ToyFs(1n);
    const files = [1, 2, 3].map((i) => t.file(1n, `f${i}`, Buffer.alloc(expected.length, 0x2a)));
    const m2 = await mountOverStore(t, {}, { dataServing: 'pread', preadFiles: 5 });
    try {
      const s2 = m2.session;
      const fds = openFdCount();
      for (const f of files) withFds(['a', 'b'], (x) => s2.setFileRuns(f.ino, x, runs, expected.length));
      // 3 registrations of 2 files each against a bound of 5: the oldest goes.
      assert.equal(s2.stats().preadEvictions, 1);
      assert.equal(openFdCount(), fds + 4);
      const r = await run('sh', ['-c', `sha256sum ${join(m2.root, 'f3')}`]);
      assert.equal(r.stdout.toString().split(' ')[0], sha(expected));
    } finally {
      await m2.close();
    }
  });
});
