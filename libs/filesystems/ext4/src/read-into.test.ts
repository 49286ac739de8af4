import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, promises as fsp, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import { BlockReader, MAX_AHEAD_BLOCKS, MAX_AROUND_BLOCKS } from './block-reader';
import { Ext4 } from './ext4';
import { makeImage, makeTempDir, removeDir } from './fixture-image';
import { MemorySource } from './memory-source';
import type { ByteSource } from './types';

let work: string;
before(async () => {
  work = await makeTempDir('ext4-read-into-');
});
after(async () => {
  await removeDir(work);
});

function randomBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    out[i] = a >>> 24;
  }
  return out;
}

/** A source that reads into buffers and counts each kind of call; readInto poisons its target range first, so a byte it skipped would show. */
class IntoSource implements ByteSource {
  readonly size: number;
  reads = 0;
  intos: { offset: number; length: number }[] = [];
  failAt: number | undefined;

  constructor(private readonly image: Buffer) {
    this.size = image.length;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    if (offset < 0 || offset + length > this.size) throw new StrataError(Errno.EIO, `read past the end (${offset}+${length})`);
    return Buffer.from(this.image.subarray(offset, offset + length));
  }

  async readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
    this.intos.push({ offset, length });
    if (offset < 0 || offset + length > this.size) throw new StrataError(Errno.EIO, `read past the end (${offset}+${length})`);
    if (this.failAt !== undefined && offset <= this.failAt && this.failAt < offset + length) throw new StrataError(Errno.EIO, 'unreadable sector');
    target.fill(0xa5, targetOffset, targetOffset + length);
    this.image.copy(target, targetOffset, offset, offset + length);
  }
}

interface Fixture {
  image: Buffer;
  files: Map<string, Buffer>;
}

let fixture: Promise<Fixture> | undefined;

/** An ext4 image with a large contiguous file, a fragmented one, a sparse one with a preallocated tail, and small files. */
function makeFixture(): Promise<Fixture> {
  fixture ??= (async () => {
    const tree = path.join(work, 'tree');
    await fsp.mkdir(tree, { recursive: true });
    const files = new Map<string, Buffer>();
    const put = async (name: string, data: Buffer): Promise<void> => {
      await fsp.writeFile(path.join(tree, name), data);
      files.set(name, data);
    };
    await put('big', randomBytes(5 * 1024 * 1024 + 123, 1));
    for (let i = 0; i < 8; i++) await put(`small${i}`, randomBytes(100 + i * 5003, 20 + i));
    const sparse = Buffer.alloc(2_500_000);
    const fd = openSync(path.join(tree, 'sparse'), 'w');
    try {
      for (const at of [7000, 300_000, 1_999_999]) {
        const b = randomBytes(9000, at);
        writeSync(fd, b, 0, b.length, at);
        b.copy(sparse, at);
      }
    } finally {
      closeSync(fd);
    }
    await fsp.truncate(path.join(tree, 'sparse'), sparse.length);
    files.set('sparse', sparse);
    const imagePath = await makeImage(work, 'fs.img', 32, ['-t', 'ext4', '-b', '1024', '-d', tree]);
    return { image: readFileSync(imagePath), files };
  })();
  return fixture;
}

async function inoOf(fs: Ext4, name: string): Promise<number> {
  const ino = await fs.lookup(fs.rootIno, Buffer.from(name));
  assert.ok(ino !== undefined, name);
  return ino;
}

/** Ranges worth reading in a file of `size` bytes: whole, unaligned starts and ends, one byte, past the end. */
function ranges(size: number): [number, number][] {
  return [
    [0, size],
    [0, size + 4096],
    [1, 1],
    [1023, 2],
    [Math.floor(size / 3) + 5, Math.floor(size / 2)],
    [Math.max(0, size - 1500), 1500],
    [size, 10],
  ];
}

test('readMapped through readInto: every file and range equals the file written, and what a read()-only source gives', async () => {
  const { image, files } = await makeFixture();
  const into = new IntoSource(image);
  const [a, b] = await Promise.all([Ext4.open(into), Ext4.open(new MemorySource(image))]);
  for (const [name, data] of files) {
    const [ia, ib] = await Promise.all([inoOf(a, name), inoOf(b, name)]);
    for (const [offset, length] of ranges(data.length)) {
      const want = data.subarray(Math.min(offset, data.length), Math.min(offset + length, data.length));
      const got = await a.read(ia, offset, length);
      assert.ok(got.equals(want), `${name} ${offset}+${length} through readInto`);
      assert.ok((await b.read(ib, offset, length)).equals(want), `${name} ${offset}+${length} through read()`);
    }
  }
  assert.ok(into.intos.length > 0, 'file data went through readInto');
});

test('readMapped: one source read per physically contiguous run of the range, never more', async () => {
  const { image, files } = await makeFixture();
  const into = new IntoSource(image);
  const fs = await Ext4.open(into);
  for (const name of ['big', 'sparse', 'small7']) {
    const ino = await inoOf(fs, name);
    const size = (files.get(name) as Buffer).length;
    for (const [offset, length] of ranges(size)) {
      const runs = (await fs.fileExtents(ino, offset, length)).filter((r) => r.kind === 'data');
      into.intos = [];
      await fs.read(ino, offset, length);
      assert.deepEqual(
        into.intos,
        runs.map((r) => (r.kind === 'data' ? { offset: r.volumeOffset, length: r.length } : undefined)),
        `${name} ${offset}+${length}: the data runs fileExtents names, each read once`,
      );
    }
  }
});

test('readMapped: a failing source read fails the read with the source error (no partial answer)', async () => {
  const { image } = await makeFixture();
  const into = new IntoSource(image);
  const fs = await Ext4.open(into);
  const ino = await inoOf(fs, 'big');
  const [run] = (await fs.fileExtents(ino, 0, 4096)).filter((r) => r.kind === 'data');
  assert.ok(run && run.kind === 'data');
  into.failAt = run.volumeOffset + 10;
  await assert.rejects(fs.read(ino, 0, 4096), (err: unknown) => err instanceof StrataError && err.errno === Errno.EIO);
});

test('metadata blocks: concurrent misses of one block share one source read; a failed read is not kept', async () => {
  const image = Buffer.alloc(64 * 1024);
  for (let b = 0; b < 16; b++) image.fill(b, b * 4096, (b + 1) * 4096);
  const source = new IntoSource(image);
  let failures = 1;
  const flaky: ByteSource = {
    size: image.length,
    read: async (offset, length) => {
      if (offset === 5 * 4096 && failures-- > 0) throw new StrataError(Errno.EIO, 'unreadable sector');
      return source.read(offset, length);
    },
  };
  const reader = new BlockReader(flaky, 4096, 16, 1 << 20);
  const blocks = await Promise.all(Array.from({ length: 20 }, (_, i) => reader.metadata(3 + (i % 2), 'test block')));
  assert.equal(source.reads, 2, 'two blocks, two source reads for twenty calls');
  assert.ok(blocks.every((mb, i) => mb.block === 3 + (i % 2) && mb.data.every((v) => v === mb.block)));
  assert.equal(blocks[0], blocks[2], 'the same cached block');
  const failed = await Promise.allSettled([reader.metadata(5, 'test block'), reader.metadata(5, 'test block')]);
  assert.deepEqual(failed.map((r) => r.status), ['rejected', 'rejected'], 'both callers of the failing read see its failure');
  assert.ok((await reader.metadata(5, 'test block')).data.every((v) => v === 5), 'the next call reads again');
  await assert.rejects(reader.metadata(16, 'test block'), (err: unknown) => err instanceof StrataError && err.errno === Errno.EUCLEAN);
  await assert.rejects(reader.metadata(16, 'test block'), (err: unknown) => err instanceof StrataError && err.errno === Errno.EUCLEAN);
  assert.equal(reader.metadataReads, 4);
});

/**
 * A source of `count` 4 KiB blocks, each filled with its own number, that
 * records every read as [first block, blocks] and fails (EIO) any read
 * covering `fault.bad`.
 */
function numberedBlocks(count: number): { source: ByteSource; reads: [number, number][]; fault: { bad?: number } } {
  const image = Buffer.alloc(count * 4096);
  for (let b = 0; b < count; b++) image.fill(b, b * 4096, (b + 1) * 4096);
  const reads: [number, number][] = [];
  const fault: { bad?: number } = {};
  const source: ByteSource = {
    size: image.length,
    read: async (offset, length) => {
      reads.push([offset / 4096, length / 4096]);
      const bad = fault.bad;
      if (bad !== undefined && offset <= bad * 4096 && bad * 4096 < offset + length) throw new StrataError(Errno.EIO, 'bad sector');
      return Buffer.from(image.subarray(offset, offset + length));
    },
  };
  return { source, reads, fault };
}

test('metadata blocks read ahead: one source read for the run, stopping at cached blocks, the bound and the end; a bad block ahead fails only itself', async () => {
  const { source, reads, fault } = numberedBlocks(32);
  const reader = new BlockReader(source, 4096, 32, 1 << 20);
  const mb = await reader.metadata(3, 'table', 30);
  assert.equal(mb.data.length, 4096);
  assert.ok(mb.data.every((v) => v === 3));
  assert.deepEqual(reads, [[3, MAX_AHEAD_BLOCKS]], 'the block and the ones after it, bounded');
  for (let b = 4; b < 3 + MAX_AHEAD_BLOCKS; b++) assert.ok((await reader.metadata(b, 'table')).data.every((v) => v === b));
  assert.equal(reads.length, 1, 'blocks read ahead are cached');
  await reader.metadata(1, 'table', 30);
  assert.deepEqual(reads[1], [1, 2], 'stops at the first cached block');
  await reader.metadata(28, 'table', 100);
  assert.deepEqual(reads[2], [28, 4], 'stops at the end of the filesystem');
  fault.bad = 22;
  reads.length = 0;
  const asked = await reader.metadata(20, 'table', 26);
  assert.ok(asked.data.every((v) => v === 20), 'a bad block ahead does not fail the one asked for');
  await assert.rejects(reader.metadata(22, 'table'), (err: unknown) => err instanceof StrataError && err.errno === Errno.EIO);
  assert.ok((await reader.metadata(23, 'table')).data.every((v) => v === 23));
  assert.deepEqual(reads.slice(0, 1), [[20, 6]]);
});

test('metadata blocks read around: a miss reads its aligned window minus blocks cached or being read, in one source read; a bad block in it fails only itself', async () => {
  const { source, reads, fault } = numberedBlocks(64);
  const reader = new BlockReader(source, 4096, 60, 1 << 20);
  assert.equal(MAX_AROUND_BLOCKS, 16);
  assert.ok((await reader.metadata(21, 'dir', 22, 16)).data.every((v) => v === 21));
  assert.deepEqual(reads, [[16, 16]], 'the aligned window holding block 21');
  for (let b = 16; b < 32; b++) assert.ok((await reader.metadata(b, 'dir', b + 1, 16)).data.every((v) => v === b));
  assert.equal(reads.length, 1, 'the window is cached');
  // Cached blocks bound the read on both sides; a window wider than the bound is read as the bound.
  await reader.metadata(36, 'dir');
  await reader.metadata(40, 'dir');
  await reader.metadata(38, 'dir', 39, 1 << 20);
  assert.deepEqual(reads.slice(1), [[36, 1], [40, 1], [37, 3]]);
  // Concurrent misses in one window share its read; the end of the filesystem bounds it.
  reads.length = 0;
  const [a, b] = await Promise.all([reader.metadata(50, 'dir', 51, 16), reader.metadata(58, 'dir', 59, 16)]);
  assert.ok(a.data.every((v) => v === 50) && b.data.every((v) => v === 58));
  assert.deepEqual(reads, [[48, 12]]);
  // Not a power of two: the power of two below it. A bad block in the window fails only itself.
  reads.length = 0;
  fault.bad = 3;
  assert.ok((await reader.metadata(5, 'dir', 6, 7)).data.every((v) => v === 5));
  assert.deepEqual(reads[0], [4, 4]);
  fault.bad = 9;
  assert.ok((await reader.metadata(10, 'dir', 11, 8)).data.every((v) => v === 10));
  assert.deepEqual(reads.slice(1, 2), [[8, 8]]);
  await assert.rejects(reader.metadata(9, 'dir'), (err: unknown) => err instanceof StrataError && err.errno === Errno.EIO);
  assert.ok((await reader.metadata(11, 'dir')).data.every((v) => v === 11));
});
