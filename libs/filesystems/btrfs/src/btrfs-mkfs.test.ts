/**
 * Images made by mkfs.btrfs --rootdir (no mount, no root needed): the tree
 * the reader shows equals the directory mkfs copied; refusals at open.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import path from 'node:path';
import { isStrataError } from '@strata/errors';
import type { ByteSource } from '@strata/filesystem';
import { Btrfs } from './btrfs';
import { btrfsDriver } from './driver';
import { bytes, makeImage, mkfsSkipReason, tempDir } from './test-fixture';

class FileBytes implements ByteSource {
  readonly size: number;
  constructor(private readonly fd: number) {
    this.size = fs.fstatSync(fd).size;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    const b = Buffer.alloc(length);
    const n = fs.readSync(this.fd, b, 0, length, offset);
    return b.subarray(0, n);
  }
}

const skip = mkfsSkipReason();
let work: string;
let fd: number | undefined;
before(() => {
  if (!skip) work = tempDir('btrfs-mkfs-');
});
after(() => {
  if (fd !== undefined) fs.closeSync(fd);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function open(image: string): FileBytes {
  if (fd !== undefined) fs.closeSync(fd);
  fd = fs.openSync(image, 'r');
  return new FileBytes(fd);
}

test('a --rootdir image reads back as the directory it was made from', { skip }, async () => {
  const src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'a', 'b'), { recursive: true });
  const files = new Map<string, Buffer>([
    ['a/b/small', Buffer.from('small\n')],
    ['random', bytes(300_000, 1, false)],
    ['text', bytes(70_000, 2, true)],
    ['a/empty', Buffer.alloc(0)],
  ]);
  for (let i = 0; i < 300; i++) files.set(`a/n${i}`, Buffer.from(`${i}\n`));
  for (const [p, b] of files) fs.writeFileSync(path.join(src, p), b);
  fs.symlinkSync('a/b/small', path.join(src, 'link'));
  const image = makeImage(work, 'rootdir.img', 128, ['-n', '4096'], src);
  const source = open(image);
  assert.equal(await btrfsDriver.detect(source), 'btrfs');
  const fsys = await Btrfs.open(source);
  const resolve = async (p: string): Promise<number> => {
    let h = fsys.rootHandle;
    for (const part of p.split('/')) {
      const next = await fsys.lookup(h, Buffer.from(part));
      assert.ok(next !== undefined, `no ${p}`);
      h = next;
    }
    return h;
  };
  for (const [p, b] of files) {
    const h = await resolve(p);
    const n = await fsys.node(h);
    assert.equal(n.size, b.length, p);
    assert.deepEqual(await fsys.read(h, 0, b.length + 100), b, p);
    if (b.length > 5000) assert.deepEqual(await fsys.read(h, 4000, 1000), b.subarray(4000, 5000));
  }
  assert.equal((await fsys.readlink(await resolve('link'))).toString(), 'a/b/small');
  const names = (await fsys.readdir(await resolve('a'))).map((e) => e.name.toString()).sort();
  assert.deepEqual(names, ['b', 'empty', ...Array.from({ length: 300 }, (_, i) => `n${i}`)].sort());
  assert.equal(await fsys.lookup(await resolve('a'), Buffer.from('absent')), undefined);
  await assert.rejects(fsys.lookup(fsys.rootHandle, Buffer.alloc(256, 0x61)), (e: unknown) => isStrataError(e) && e.errno === 36);
  await assert.rejects(fsys.readdir(await resolve('text')), (e: unknown) => isStrataError(e) && e.errno === 20);
  await assert.rejects(fsys.read(await resolve('a'), 0, 10), (e: unknown) => isStrataError(e) && e.errno === 21);
  await assert.rejects(fsys.node(2 ** 40 + 5), (e: unknown) => isStrataError(e) && e.errno === 116);
  assert.equal(await fsys.defaultSubvolumePath(), '/');
  assert.deepEqual((await fsys.subvolumes()).map((s) => s.path), ['/']);
  assert.equal(await btrfsDriver.detect({ size: 1 << 20, read: async (_o, l) => Buffer.alloc(l) }), undefined);
});

for (const [csum, name] of [
  ['crc32c', 'crc32c'],
  ['xxhash', 'xxhash64'],
  ['sha256', 'sha256'],
  ['blake2', 'blake2b'],
] as const) {
  test(`--csum ${csum}: metadata and data verified with ${name}`, { skip }, async () => {
    const src = path.join(work, `src-${csum}`);
    fs.mkdirSync(src);
    const content = bytes(200_000, 9, false);
    fs.writeFileSync(path.join(src, 'data'), content);
    const image = makeImage(work, `${csum}.img`, 128, ['--csum', csum, '-m', 'single'], src);
    const reads: [number, number][] = [];
    const plain = open(image);
    const recording: ByteSource = { size: plain.size, read: (o, l) => (reads.push([o, l]), plain.read(o, l)) };
    const fsys = await Btrfs.open(recording);
    const h = await fsys.lookup(fsys.rootHandle, Buffer.from('data'));
    assert.ok(h !== undefined);
    const before = reads.length;
    assert.deepEqual(await fsys.read(h, 0, content.length), content);
    const dataRead = reads.slice(before).find(([, l]) => l >= 65536);
    assert.ok(dataRead, 'no data read');
    // One flipped data byte: the sector's checksum no longer matches.
    const fd2 = fs.openSync(image, 'r+');
    try {
      fs.writeSync(fd2, Buffer.from([~content[100] & 0xff]), 0, 1, dataRead[0] + 100);
    } finally {
      fs.closeSync(fd2);
    }
    const again = await Btrfs.open(open(image));
    const h2 = await again.lookup(again.rootHandle, Buffer.from('data'));
    assert.ok(h2 !== undefined);
    await assert.rejects(again.read(h2, 0, 4096), (e: unknown) => isStrataError(e) && e.errno === 5 && /checksum mismatch/.test(e.message));
    assert.deepEqual(await again.read(h2, 4096, 4096), content.subarray(4096, 8192));
    // A flipped byte in the first tree block read after open (metadata): that block's checksum fails.
    const tree = reads.slice(0, before).filter(([o, l]) => l === 16384 && o > 0x10000).pop();
    assert.ok(tree);
    const fd3 = fs.openSync(image, 'r+');
    try {
      fs.writeSync(fd3, Buffer.from([0xee]), 0, 1, tree[0] + 300);
    } finally {
      fs.closeSync(fd3);
    }
    await assert.rejects(
      (async () => {
        const third = await Btrfs.open(open(image));
        await third.readdir(third.rootHandle);
        await third.lookup(third.rootHandle, Buffer.from('data'));
      })(),
      (e: unknown) => isStrataError(e) && new RegExp(`${name} checksum mismatch`).test(e.message),
    );
  });
}

test('a two-device filesystem is refused at open', { skip }, async () => {
  const second = path.join(work, 'second.img');
  fs.closeSync(fs.openSync(second, 'w'));
  fs.truncateSync(second, 128 << 20);
  const image = makeImage(work, 'first.img', 128, ['-d', 'single', '-m', 'single', second]);
  await assert.rejects(Btrfs.open(open(image)), (e: unknown) => isStrataError(e) && e.errno === 95 && /multi-device btrfs \(2 devices\) is not supported/.test(e.message));
});

test('garbage and a primary superblock with a bad checksum', { skip }, async () => {
  await assert.rejects(Btrfs.open({ size: 1 << 20, read: async (_o, l) => Buffer.alloc(l) }), (e: unknown) => isStrataError(e) && e.errno === 22);
  const image = makeImage(work, 'badsuper.img', 128, []);
  const h = fs.openSync(image, 'r+');
  try {
    fs.writeSync(h, Buffer.from([0xde, 0xad]), 0, 2, 0x10000 + 300);
  } finally {
    fs.closeSync(h);
  }
  // The primary fails its checksum: the mirror at 64 MiB is used, and the problem logged.
  const events: Record<string, unknown>[] = [];
  const fsys = await Btrfs.open(open(image), { log: (e) => events.push(e) });
  assert.equal((await fsys.readdir(fsys.rootHandle)).length, 0);
  assert.equal(events[0]?.event, 'btrfs.superblock');
});

test('DUP data: a sector bad in the first copy is read from the second (event), bad in both is EIO', { skip }, async () => {
  const src = path.join(work, 'src-dupdata');
  fs.mkdirSync(src);
  const content = bytes(300_000, 11, false);
  fs.writeFileSync(path.join(src, 'data'), content);
  const image = makeImage(work, 'dupdata.img', 128, ['-d', 'dup', '-m', 'dup'], src);
  const reads: [number, number][] = [];
  const plain = open(image);
  const fsys = await Btrfs.open({ size: plain.size, read: (o, l) => (reads.push([o, l]), plain.read(o, l)) });
  const h = await fsys.lookup(fsys.rootHandle, Buffer.from('data'));
  assert.ok(h !== undefined);
  const before = reads.length;
  assert.deepEqual(await fsys.read(h, 0, content.length), content);
  const first = reads.slice(before).find(([, l]) => l >= 65536);
  assert.ok(first);
  const flip = (at: number): void => {
    const w = fs.openSync(image, 'r+');
    try {
      const b = Buffer.alloc(1);
      fs.readSync(w, b, 0, 1, at);
      b[0] ^= 0xff;
      fs.writeSync(w, b, 0, 1, at);
    } finally {
      fs.closeSync(w);
    }
  };
  flip(first[0] + 4096 * 3 + 10);
  const events: Record<string, unknown>[] = [];
  const again = await Btrfs.open(open(image), { log: (e) => events.push(e) });
  assert.deepEqual(await again.read(h, 0, content.length), content);
  assert.ok(events.some((e) => e.event === 'btrfs.mirror'), JSON.stringify(events));
  // The same sector in the second copy: find it by reading with the first copy's bytes failing.
  const reads2: [number, number][] = [];
  const plain2 = open(image);
  const third = await Btrfs.open({ size: plain2.size, read: (o, l) => (reads2.push([o, l]), plain2.read(o, l)) });
  const opened = reads2.length;
  await third.read(h, 4096 * 3, 4096);
  const second = reads2.slice(opened).filter(([, l]) => l === 4096).map(([o]) => o).find((o) => o !== first[0] + 4096 * 3);
  assert.ok(second !== undefined, JSON.stringify(reads2));
  flip(second + 10);
  const fourth = await Btrfs.open(open(image));
  await assert.rejects(fourth.read(h, 4096 * 3, 4096), (e: unknown) => isStrataError(e) && e.errno === 5);
  assert.deepEqual(await fourth.read(h, 0, 4096 * 3), content.subarray(0, 4096 * 3));
});
