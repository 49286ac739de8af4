/**
 * The reader against the kernel: images made by mke2fs in several
 * configurations, filled through a read-write loop mount, then every path
 * compared with what the kernel's read-only mount reports.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Ext4 } from './ext4';
import { FileSource } from './file-source';
import { debugfs, makeImage, makeTempDir, removeDir, run, withMount } from './fixture-image';
import { FillOptions, bigDirName, fillTree } from './fixture-tree';
import { TreeSnapshot, diffSnapshots, kernelSnapshot, readerSnapshot } from './tree-snapshot';
import type { Ext4StatFs } from './types';

interface Variant {
  name: string;
  sizeMiB: number;
  mkfs: string[];
  /** Applied between mke2fs and the fill (hash algorithm, hash signedness). */
  tune?: (image: string) => void;
  fill: FillOptions;
  birthTime: boolean;
}

const BASE: FillOptions = { bigDir: 0, sparseBytes: 64 * 1024 * 1024, fragmented: false, farFuture: true, smallThings: false, extents: true };

const VARIANTS: Variant[] = [
  {
    name: 'ext4 defaults (4 KiB blocks, 64bit, flex_bg, metadata_csum, huge_file), 20k-entry htree, 2 GiB sparse file, deep extent tree',
    sizeMiB: 600,
    mkfs: ['-t', 'ext4'],
    fill: { ...BASE, bigDir: 20_000, sparseBytes: 2 * 1024 * 1024 * 1024, fragmented: true },
    birthTime: true,
  },
  {
    name: 'ext4 with inline_data and ea_inode',
    sizeMiB: 128,
    mkfs: ['-t', 'ext4', '-O', 'inline_data,ea_inode'],
    fill: { ...BASE, bigDir: 300, smallThings: true, eaInode: true },
    birthTime: true,
  },
  {
    name: 'ext3 (journal, indirect blocks, 1 KiB blocks), TEA hash, unsigned hash flag',
    sizeMiB: 160,
    mkfs: ['-t', 'ext3'],
    tune: (image) => {
      run('tune2fs', ['-E', 'hash_alg=tea', image]);
      run('debugfs', ['-w', '-R', 'ssv flags 2', image]);
    },
    fill: { ...BASE, bigDir: 3000, extents: false },
    birthTime: true,
  },
  {
    name: 'ext2, 1 KiB blocks, 128-byte inodes, legacy hash, triple-indirect sparse file',
    sizeMiB: 160,
    mkfs: ['-t', 'ext2', '-b', '1024', '-I', '128'],
    tune: (image) => run('tune2fs', ['-E', 'hash_alg=legacy', image]),
    fill: { ...BASE, bigDir: 2000, sparseBytes: 80 * 1024 * 1024, extents: false, farFuture: false },
    birthTime: false,
  },
  {
    name: 'ext4 without 64bit and metadata_csum (32-byte descriptors, gdt_csum)',
    sizeMiB: 160,
    mkfs: ['-t', 'ext4', '-O', '^64bit,^metadata_csum'],
    fill: { ...BASE, bigDir: 1000, fragmented: true },
    birthTime: true,
  },
  {
    name: 'ext4 meta_bg without resize_inode, 1 KiB blocks',
    sizeMiB: 160,
    mkfs: ['-t', 'ext4', '-b', '1024', '-O', 'meta_bg,^resize_inode'],
    fill: { ...BASE, bigDir: 500 },
    birthTime: true,
  },
];

function kernelStatFs(mnt: string): Ext4StatFs {
  const [frsize, bsize, blocks, bfree, bavail, files, ffree, namemax] = run('stat', ['-f', '-c', '%S %s %b %f %a %c %d %l', mnt])
    .trim()
    .split(' ')
    .map(Number);
  return { bsize, frsize, blocks, bfree, bavail, files, ffree, namemax };
}

let work: string;
before(async () => {
  work = await makeTempDir('ext4-kernel-');
});
after(async () => {
  await removeDir(work);
});

for (const [i, v] of VARIANTS.entries()) {
  describe(v.name, () => {
    let image: string;
    let kernel: TreeSnapshot;
    let kernelStat: Ext4StatFs;
    before(async () => {
      image = await makeImage(work, `v${i}.img`, v.sizeMiB, v.mkfs);
      v.tune?.(image);
      await withMount(image, false, (mnt) => fillTree(mnt, v.fill));
      await withMount(image, true, async (mnt) => {
        kernel = await kernelSnapshot(mnt);
        kernelStat = kernelStatFs(mnt);
      });
    });

    test('every path: lstat, readdir, readlink, content and xattrs equal the kernel', async () => {
      const source = await FileSource.open(image);
      try {
        const events: Record<string, unknown>[] = [];
        const fs = await Ext4.open(source, { log: (e) => events.push(e) });
        assert.equal(fs.needsRecovery, false);
        const reader = await readerSnapshot(fs, v.birthTime);
        assert.deepEqual(diffSnapshots(kernel, reader), []);
        assert.ok(kernel.size > 100, `only ${kernel.size} paths compared`);
        assert.deepEqual(events, []);
      } finally {
        await source.close();
      }
    });

    test('statfs equals the kernel', async () => {
      const source = await FileSource.open(image);
      try {
        const fs = await Ext4.open(source);
        assert.deepEqual(fs.statfs(), kernelStat);
      } finally {
        await source.close();
      }
    });

    if (v.fill.bigDir >= 1000) {
      test('a lookup in the big directory descends its htree and reads only a few blocks', async () => {
        const source = await FileSource.open(image);
        try {
          const fs = await Ext4.open(source, { cacheBytes: 1024 * 1024 });
          const bigIno = await fs.lookup(fs.rootIno, Buffer.from('big'));
          assert.ok(bigIno !== undefined);
          const big = await fs.inode(bigIno);
          assert.ok(big.flags & 0x1000, 'big/ is not an indexed directory');
          const names = [0, 1, 7, Math.floor(v.fill.bigDir / 2), v.fill.bigDir - 1, 1234 % v.fill.bigDir];
          for (const n of names) {
            const name = bigDirName(n);
            const want = kernel.get(Buffer.concat([Buffer.from('/big/'), name]).toString('hex'));
            assert.ok(want, `kernel has no big/${n}`);
            const before = source.bytesRead;
            const reads = source.reads;
            assert.equal(await fs.lookup(bigIno, name), want.ino);
            const bytes = source.bytesRead - before;
            assert.ok(source.reads - reads <= 6, `lookup took ${source.reads - reads} source reads`);
            assert.ok(bytes <= 6 * fs.blockSize && bytes * 5 < big.size, `lookup read ${bytes} bytes of a ${big.size}-byte directory`);
          }
          const before2 = source.bytesRead;
          assert.equal(await fs.lookup(bigIno, Buffer.from('absent-name')), undefined);
          assert.equal(await fs.lookup(bigIno, Buffer.from('entry-number-')), undefined);
          assert.ok((source.bytesRead - before2) * 5 < big.size);
        } finally {
          await source.close();
        }
      });
    }

    if (v.fill.fragmented) {
      test('the fragmented file has an extent tree deeper than the inode', () => {
        const out = debugfs(image, 'ex /files/fragmented');
        const m = /^\s*\d+\/\s*(\d+)/m.exec(out);
        assert.ok(m && Number(m[1]) >= 1, `extent tree depth: ${out.slice(0, 200)}`);
      });
    }
  });
}
