import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { FileExtent } from '@strata/filesystem';
import { fileExtentRuns } from './file-extent-map';
import { StrataError } from '@strata/errors';
import * as path from 'node:path';
import { ImageFile, MemorySource, changeThenCrash, fillTree, hasTool, kernelSkipReason, makeImage, makeTempDir, patternBytes, protoImage, withMount } from './fixture-image';
import { Xfs } from './xfs';

let work: string;
before(() => {
  work = makeTempDir('xfs-extents-');
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

test('fileExtentRuns: holes and unwritten extents are zeros, replaced blocks unmapped, neighbours merged', () => {
  const extents = [
    { offset: 1, block: 100, count: 2, unwritten: false },
    { offset: 3, block: 102, count: 1, unwritten: false },
    { offset: 4, block: 200, count: 2, unwritten: true },
    { offset: 8, block: 300, count: 3, unwritten: false },
  ];
  const replaced = (o: number, l: number): boolean => o < 301 * 512 + 512 && o + l > 301 * 512;
  const runs = fileExtentRuns(extents, 512, replaced, 100, 11 * 512 - 200);
  const want: FileExtent[] = [
    { kind: 'zero', length: 412 },
    { kind: 'data', volumeOffset: 100 * 512, length: 3 * 512 },
    { kind: 'zero', length: 4 * 512 },
    { kind: 'data', volumeOffset: 300 * 512, length: 512 },
    { kind: 'unmapped', length: 512, reason: 'log replay' },
    { kind: 'data', volumeOffset: 302 * 512, length: 412 },
  ];
  assert.deepEqual(runs, want);
  assert.deepEqual(fileExtentRuns([], 4096, () => false, 0, 5), [{ kind: 'zero', length: 5 }]);
  assert.deepEqual(fileExtentRuns(extents, 512, () => false, 0, 0), []);
});

const WINDOW = 8 * 1024 * 1024;

/** Every regular file: its runs read straight from the image (unmapped through read()) equal read(). */
async function checkAll(image: string): Promise<{ files: number; reasons: Set<string>; recovered: boolean }> {
  const reader = await Xfs.open(ImageFile.open(image));
  const fd = fs.openSync(image, 'r');
  const reasons = new Set<string>();
  let files = 0;
  try {
    const queue = [reader.rootHandle];
    while (queue.length > 0) {
      const dir = queue.pop() as number;
      for (const e of await reader.readdir(dir)) {
        if (e.type === 'dir') {
          queue.push(e.handle);
          continue;
        }
        if (e.type !== 'file') continue;
        files++;
        const { size } = await reader.node(e.handle);
        const ranges: [number, number][] = [[0, Math.min(size + 100, WINDOW)], [Math.max(0, size - 5000), 10_000]];
        if (size > 0) ranges.push([Math.floor(size / 3) + 123, 70_000]);
        for (const [offset, length] of ranges) {
          const runs = await reader.fileExtents(e.handle, offset, length);
          const expected = await reader.read(e.handle, offset, length);
          assert.equal(runs.reduce((n, r) => n + r.length, 0), expected.length, `inode ${e.handle} ${offset}+${length}`);
          const parts: Buffer[] = [];
          let pos = offset;
          for (const r of runs) {
            if (r.kind === 'data') {
              const b = Buffer.alloc(r.length);
              assert.equal(fs.readSync(fd, b, 0, r.length, r.volumeOffset), r.length);
              parts.push(b);
            } else if (r.kind === 'zero') parts.push(Buffer.alloc(r.length));
            else {
              reasons.add(r.reason);
              parts.push(await reader.read(e.handle, pos, r.length));
            }
            pos += r.length;
          }
          assert.ok(Buffer.concat(parts).equals(expected), `inode ${e.handle} ${offset}+${length}: runs read as read() does`);
        }
      }
    }
    await assert.rejects(reader.fileExtents(reader.rootHandle, 0, 1), /is a directory/);
  } finally {
    fs.closeSync(fd);
  }
  return { files, reasons, recovered: reader.needsRecovery };
}

test('fileExtents of a kernel-written XFS (sparse, preallocated, reflinked, a bmap btree), then after a crash replayed in memory', { skip: kernelSkipReason() }, async () => {
  const image = makeImage(work, 'x.img', 96, []);
  await withMount(image, 'rw', (mnt) => fillTree(mnt, { bigDir: 40, fragments: 300, manyAttrs: 4 }));
  const clean = await checkAll(image);
  assert.ok(clean.files > 12, `${clean.files} files`);
  assert.deepEqual([...clean.reasons], []);
  await withMount(image, 'rw', (mnt) => changeThenCrash(mnt));
  const replayed = await checkAll(image);
  assert.ok(replayed.files > clean.files);
  assert.equal(replayed.recovered, true, 'the log was replayed');
});

test('fuzz: fileExtents on mutated images resolves or rejects with a StrataError, in bounded time', { skip: hasTool('mkfs.xfs') ? false : 'needs xfsprogs' }, async () => {
  const src = path.join(work, 'fuzz-src');
  fs.mkdirSync(src);
  for (let i = 0; i < 12; i++) fs.writeFileSync(path.join(src, `f${i}`), patternBytes(1000 + i * 50_000, `z${i}`));
  const image = protoImage(work, 'fuzz.img', 64, [], src);
  const original = fs.readFileSync(image);
  const reader0 = await Xfs.open(new MemorySource(original));
  const handles: number[] = (await reader0.readdir(reader0.rootHandle)).map((e) => e.handle);
  let seed = 5;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  // Where the inodes and their extent records are: the first inode cluster and the root directory.
  const hot = Math.min(original.length, 256 * 1024);
  for (let i = 0; i < 40; i++) {
    const bytes = Buffer.from(original);
    for (let k = 0; k < 24; k++) bytes[Math.floor(rnd() * hot)] = Math.floor(rnd() * 256);
    const started = Date.now();
    let reader: Xfs;
    try {
      reader = await Xfs.open(new MemorySource(bytes));
    } catch (err) {
      assert.ok(err instanceof StrataError, String(err));
      continue;
    }
    for (const h of handles) {
      await reader.fileExtents(h, Math.floor(rnd() * 100_000), Math.floor(rnd() * 4 * 1024 * 1024)).then(
        (runs) => assert.ok(runs.every((r) => r.length > 0 && (r.kind !== 'data' || (r.volumeOffset >= 0 && r.volumeOffset + r.length <= bytes.length))), 'runs inside the volume'),
        (err: unknown) => assert.ok(err instanceof StrataError, String(err)),
      );
    }
    assert.ok(Date.now() - started < 10_000, `mutation ${i} took too long`);
  }
});
