import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, promises as fsp, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { FileExtent } from '@strata/filesystem';
import { Ext4 } from './ext4';
import { StrataError } from '@strata/errors';
import { FileSource } from './file-source';
import { MemorySource } from './memory-source';
import { makeImage, makeTempDir, removeDir } from './fixture-image';
import { recoveryCopy } from './journal/fixture-journal';

let work: string;
before(async () => {
  work = await makeTempDir('ext4-extents-');
});
after(async () => {
  await removeDir(work);
});

const canMount = process.getuid?.() === 0;

function randomBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    out[i] = a >>> 24;
  }
  return out;
}

/** A tree with small, large, fragmented-by-holes, preallocated, empty and tiny files. */
async function makeTree(dir: string): Promise<void> {
  await fsp.mkdir(path.join(dir, 'sub'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'empty'), '');
  await fsp.writeFile(path.join(dir, 'tiny'), 'tiny content');
  await fsp.writeFile(path.join(dir, 'sub', 'big'), randomBytes(3 * 1024 * 1024 + 777, 1));
  for (let i = 0; i < 12; i++) await fsp.writeFile(path.join(dir, 'sub', `f${i}`), randomBytes(1000 + i * 9001, 10 + i));
  const fd = openSync(path.join(dir, 'sparse'), 'w');
  try {
    for (const at of [5000, 400_000, 2_000_000]) {
      const b = randomBytes(7000, at);
      writeSync(fd, b, 0, b.length, at);
    }
  } finally {
    closeSync(fd);
  }
  await fsp.truncate(path.join(dir, 'sparse'), 3_000_000);
}

/** The extents read straight from the volume image (unmapped through read()) equal read(), and cover the range. */
async function checkFile(fs: Ext4, image: string, ino: number, size: number, reasons: Set<string>): Promise<void> {
  const ranges: [number, number][] = [[0, size + 100]];
  for (let i = 0; i < 6 && size > 0; i++) {
    const offset = Math.floor(((i * 7919 + ino) % 97) / 97 * size);
    ranges.push([offset, 1 + ((i * 104729) % (size - offset + 50))]);
  }
  const fd = openSync(image, 'r');
  try {
    for (const [offset, length] of ranges) {
      const runs: FileExtent[] = await fs.fileExtents(ino, offset, length);
      const expected = await fs.read(ino, offset, length);
      assert.equal(runs.reduce((n, r) => n + r.length, 0), expected.length, `inode ${ino} ${offset}+${length}: runs cover what read() gives`);
      const parts: Buffer[] = [];
      let pos = offset;
      for (const r of runs) {
        if (r.kind === 'data') {
          const b = Buffer.alloc(r.length);
          assert.equal(readSync(fd, b, 0, r.length, r.volumeOffset), r.length);
          parts.push(b);
        } else if (r.kind === 'zero') {
          parts.push(Buffer.alloc(r.length));
        } else {
          reasons.add(r.reason);
          parts.push(await fs.read(ino, pos, r.length));
        }
        pos += r.length;
      }
      assert.ok(Buffer.concat(parts).equals(expected), `inode ${ino} ${offset}+${length}: extents read as read() does`);
    }
  } finally {
    closeSync(fd);
  }
}

async function checkAll(image: string): Promise<{ files: number; reasons: Set<string> }> {
  const source = await FileSource.open(image);
  const reasons = new Set<string>();
  let files = 0;
  try {
    const fs = await Ext4.open(source);
    const queue = [fs.rootIno];
    while (queue.length > 0) {
      const dir = queue.pop() as number;
      for (const e of await fs.readdir(dir)) {
        const st = await fs.inode(e.ino);
        if (e.type === 'dir') queue.push(e.ino);
        else if (e.type === 'file') {
          files++;
          await checkFile(fs, image, e.ino, st.size, reasons);
        } else {
          await assert.rejects(fs.fileExtents(e.ino, 0, 10), /not a regular file/);
        }
      }
    }
    await assert.rejects(fs.fileExtents(fs.rootIno, 0, 10), /is a directory/);
    await assert.rejects(fs.fileExtents(fs.rootIno, -1, 10), /bad range/);
  } finally {
    await source.close();
  }
  return { files, reasons };
}

for (const [name, mkfs] of [
  ['ext4', ['-t', 'ext4', '-b', '4096']],
  ['ext4 inline_data, 1 KiB blocks', ['-t', 'ext4', '-b', '1024', '-O', 'inline_data']],
  ['ext3 (block-mapped files)', ['-t', 'ext3', '-b', '1024']],
] as const) {
  test(`fileExtents (${name}): every file's runs read straight from the image equal read()`, async () => {
    const tree = path.join(work, `tree-${name.length}`);
    await makeTree(tree);
    const image = await makeImage(work, `x${name.length}.img`, 32, [...mkfs, '-d', tree]);
    const { files, reasons } = await checkAll(image);
    assert.ok(files >= 15, `${files} files`);
    assert.deepEqual([...reasons], name.includes('inline') ? ['inline data'] : []);
  });
}

test('fileExtents after journal replay: blocks the journal replaced are unmapped ("journal replay")', { skip: canMount ? false : 'needs root to mount' }, async () => {
  const { copy, live } = await recoveryCopy(work, 'jr', 24, ['-t', 'ext4', '-b', '4096'], ['data=journal']);
  try {
    const { reasons } = await checkAll(copy);
    assert.deepEqual([...reasons], ['journal replay']);
  } finally {
    live.stop();
  }
});

test('fuzz: fileExtents on mutated images resolves or rejects with a StrataError, in bounded time', async () => {
  const tree = path.join(work, 'fuzz-tree');
  await makeTree(tree);
  const image = await makeImage(work, 'fuzz.img', 16, ['-t', 'ext4', '-b', '1024', '-d', tree]);
  const original = await fsp.readFile(image);
  let seed = 99;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (let i = 0; i < 40; i++) {
    const bytes = Buffer.from(original);
    // The metadata lives in the first few hundred KiB of this image: inode tables, extent roots and blocks.
    for (let k = 0; k < 24; k++) bytes[Math.floor(rnd() * 600 * 1024)] = Math.floor(rnd() * 256);
    const started = Date.now();
    let fs: Ext4;
    try {
      fs = await Ext4.open(new MemorySource(bytes));
    } catch (err) {
      assert.ok(err instanceof StrataError, String(err));
      continue;
    }
    for (let ino = 11; ino < 40; ino++) {
      await fs.fileExtents(ino, Math.floor(rnd() * 100_000), Math.floor(rnd() * 4 * 1024 * 1024)).then(
        (runs) => assert.ok(runs.every((r) => r.length > 0 && (r.kind !== 'data' || (r.volumeOffset >= 0 && r.volumeOffset + r.length <= bytes.length))), 'runs inside the volume'),
        (err: unknown) => assert.ok(err instanceof StrataError, String(err)),
      );
    }
    assert.ok(Date.now() - started < 10_000, `mutation ${i} took too long`);
  }
});
