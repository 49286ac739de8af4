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
  ['xxhash', 'xxhash64'],
  ['blake2', 'blake2b'],
] as const) {
  test(`--csum ${csum} is refused at open naming ${name}`, { skip }, async () => {
    const image = makeImage(work, `${csum}.img`, 128, ['--csum', csum]);
    await assert.rejects(Btrfs.open(open(image)), (e: unknown) => isStrataError(e) && e.errno === 95 && e.message.includes(name));
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
