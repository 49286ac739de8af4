/**
 * The XFS reader against the kernel: images made by mkfs.xfs in several
 * configurations, filled through a read-write loop mount, then every path
 * compared with what the kernel's read-only loop mount reports (lstat,
 * readdir, readlink, content, xattrs) and statfs. v4 (crc=0), which this
 * kernel no longer mounts, is compared with the source tree mkfs.xfs
 * copied into it from a prototype file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errno, isStrataError } from '@strata/errors';
import { Xfs, xfsDriver } from '@strata/xfs';
import { FillOptions, ImageFile, run, changeThenCrash, fillTree, fragmentedFile, hasTool, kernelSkipReason, kernelStatFs, makeImage, makeTempDir, patternBytes, protoImage, withMount } from '@strata/xfs/dist/fixture-image';
import { inspectLog } from '@strata/xfs/dist/log/log-head';
import { MetadataReader } from '@strata/xfs/dist/metadata-reader';
import { parseSuperblock } from '@strata/xfs/dist/superblock';
import { readFilesystemTree } from '../support/filesystem-tree';
import { ALL_FIELDS, compareTrees, readKernelTree, type Tree } from '../support/tree-snapshot';

interface Variant {
  name: string;
  sizeMiB: number;
  mkfs: string[];
  fill: FillOptions;
}

const VARIANTS: Variant[] = [
  {
    name: 'v5 defaults (4 KiB blocks, reflink, finobt, sparse inodes, bigtime): btree-mapped node directory, 2000-extent file, node-form attributes',
    sizeMiB: 512,
    mkfs: [],
    fill: { bigDir: 3000, fragments: 2000, manyAttrs: 300 },
  },
  {
    name: 'v5, 1 KiB blocks, 16 KiB directory blocks, nrext64: two-level bmap btree, btree-mapped attribute fork',
    sizeMiB: 300,
    mkfs: ['-b', 'size=1024', '-n', 'size=16384', '-i', 'nrext64=1'],
    fill: { bigDir: 2500, fragments: 1500, manyAttrs: 150 },
  },
  {
    name: 'v5 with the reverse-mapping btree, without reflink and finobt (statfs keeps rmap blocks apart)',
    sizeMiB: 320,
    mkfs: ['-m', 'rmapbt=1,reflink=0,finobt=0'],
    fill: { bigDir: 400, fragments: 1500, manyAttrs: 40, noReflink: true },
  },
];

const skipReason = kernelSkipReason();
const TIMED = ['/', '/meta/old', '/meta/future', '/meta/y2038', '/files/f100', '/dev/null'];
let work: string;
before(() => {
  work = makeTempDir('xfs-kernel-');
});
after(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

async function readerTree(image: string, withContent = true): Promise<{ tree: Tree; failures: unknown[]; fs: Xfs; events: unknown[] }> {
  const source = ImageFile.open(image);
  const events: unknown[] = [];
  const reader = await Xfs.open(source, { log: (e) => events.push(e) });
  const { tree, failures } = await readFilesystemTree(reader, withContent);
  return { tree, failures, fs: reader, events };
}

for (const [i, v] of VARIANTS.entries()) {
  describe(v.name, { skip: skipReason }, () => {
    let image: string;
    let kernel: Tree;
    let kernelStat: ReturnType<typeof kernelStatFs>;
    const kernelTimes = new Map<string, fs.BigIntStats>();
    before(async () => {
      image = makeImage(work, `v${i}.img`, v.sizeMiB, v.mkfs);
      await withMount(image, 'rw', (mnt) => fillTree(mnt, v.fill));
      await withMount(image, 'ro', (mnt) => {
        kernel = readKernelTree(mnt);
        kernelStat = kernelStatFs(mnt);
        for (const p of TIMED) kernelTimes.set(p, fs.lstatSync(path.join(mnt, p), { bigint: true }));
      });
    });

    test('atime, ctime, birth time (statx) and st_blksize equal the kernel\'s, before 1970 and after 2038 too', async () => {
      const reader = await Xfs.open(ImageFile.open(image));
      for (const p of TIMED) {
        let handle = reader.rootHandle;
        for (const part of p.split('/').filter(Boolean)) handle = (await reader.lookup(handle, Buffer.from(part)))!;
        const node = await reader.node(handle);
        const k = kernelTimes.get(p)!;
        assert.deepEqual([node.atimeNs, node.mtimeNs, node.ctimeNs, node.crtimeNs, node.blksize], [k.atimeNs, k.mtimeNs, k.ctimeNs, k.birthtimeNs, Number(k.blksize)], p);
      }
    });

    test('every path: lstat, readdir, readlink, content and xattrs equal the kernel; statfs too', async () => {
      const { tree, failures, fs: reader, events } = await readerTree(image);
      assert.deepEqual(failures, []);
      assert.deepEqual(compareTrees(kernel, tree, ALL_FIELDS), []);
      assert.ok(kernel.size > v.fill.bigDir, `only ${kernel.size} paths compared`);
      assert.deepEqual(await reader.statfs(), kernelStat);
      assert.equal(reader.needsRecovery, false);
      assert.deepEqual(events, []);
    });

    test('lookup finds every listed name and nothing else', async () => {
      const reader = await Xfs.open(ImageFile.open(image));
      const big = await reader.lookup(reader.rootHandle, Buffer.from('big'));
      assert.ok(big !== undefined);
      const entries = await reader.readdir(big);
      assert.equal(entries.length, [...kernel.keys()].filter((p) => p.startsWith('/big/')).length);
      for (const e of entries.filter((_, n) => n % 97 === 0)) assert.equal(await reader.lookup(big, e.name), e.handle);
      assert.equal(await reader.lookup(big, Buffer.from('no-such-name')), undefined);
      // '.' and '..' are not listed but resolve, from a node directory and a shortform one.
      const sf = (await reader.lookup(reader.rootHandle, Buffer.from('sf')))!;
      assert.equal(await reader.lookup(big, Buffer.from('.')), big);
      assert.equal(await reader.lookup(big, Buffer.from('..')), reader.rootHandle);
      assert.equal(await reader.lookup(sf, Buffer.from('..')), reader.rootHandle);
      assert.equal(await reader.lookup(reader.rootHandle, Buffer.from('..')), reader.rootHandle);
      await assert.rejects(reader.lookup(big, Buffer.alloc(256, 0x61)), (err) => isStrataError(err) && err.errno === Errno.ENAMETOOLONG);
      const file = await reader.lookup(reader.rootHandle, Buffer.from('files'));
      assert.ok(file !== undefined);
      const f = await reader.lookup(file, Buffer.from('f100'));
      assert.ok(f !== undefined);
      await assert.rejects(reader.readdir(f), (err) => isStrataError(err) && err.errno === Errno.ENOTDIR);
      assert.equal(await xfsDriver.detect(ImageFile.open(image)), 'xfs');
    });
  });
}

describe('a dirty log (the guest crashed after its changes reached the log) against the kernel\'s recovery', { skip: skipReason }, () => {
  let image: string;
  let kernel: Tree;
  let kernelStat: ReturnType<typeof kernelStatFs>;
  before(async () => {
    image = makeImage(work, 'dirty.img', 96, []);
    await withMount(image, 'rw', (mnt) => fillTree(mnt, { bigDir: 1200, fragments: 300, manyAttrs: 100 }));
    await withMount(image, 'rw', (mnt) => changeThenCrash(mnt));
    // The kernel's answer: a copy it may write, recovered by a read-only mount of a writable device.
    const copy = path.join(work, 'dirty-copy.img');
    fs.copyFileSync(image, copy);
    await withMount(copy, 'recover', (mnt) => {
      kernel = readKernelTree(mnt);
      kernelStat = kernelStatFs(mnt);
    });
    fs.rmSync(copy);
  });

  test('replayed in memory: every path and statfs equal the recovered kernel mount; the image is not written', async () => {
    const before = fs.readFileSync(image);
    const { tree, failures, fs: reader, events } = await readerTree(image);
    assert.equal(reader.needsRecovery, true);
    assert.deepEqual(failures, []);
    assert.deepEqual(compareTrees(kernel, tree, ALL_FIELDS), []);
    assert.ok(kernel.has('/after/deep/er/moved') && kernel.size > 1500);
    assert.deepEqual(await reader.statfs(), kernelStat);
    assert.equal(events.length, 1);
    assert.ok(fs.readFileSync(image).equals(before));
  });

  test("journal: 'ignore' reads the image as on disk, as the kernel's norecovery mount does", async () => {
    const reader = await Xfs.open(ImageFile.open(image), { journal: 'ignore' });
    assert.equal(reader.needsRecovery, true);
    // What reached its place before the crash depends on the kernel's writeback timing: the truth is its own norecovery view.
    const mnt = makeTempDir('xfs-norecovery-');
    const dev = run('losetup', ['-r', '-f', '--show', image]).trim();
    let onDisk: boolean;
    try {
      run('mount', ['-t', 'xfs', '-o', 'ro,norecovery,nouuid', dev, mnt]);
      try {
        onDisk = fs.existsSync(path.join(mnt, 'after'));
      } finally {
        run('umount', [mnt]);
      }
    } finally {
      run('losetup', ['-d', dev]);
      fs.rmdirSync(mnt);
    }
    assert.equal((await reader.lookup(reader.rootHandle, Buffer.from('after'))) !== undefined, onDisk);
  });
});

describe('a dirty log that has gone round its ring (cycle 2 and more)', { skip: skipReason }, () => {
  test('head found where the cycle stamps drop; every path and statfs equal the kernel\'s recovery', async () => {
    const image = makeImage(work, 'wrapped.img', 100, ['-l', 'size=1368b']);
    await withMount(image, 'rw', (mnt) => {
      for (let r = 0; r < 4; r++) {
        fs.mkdirSync(path.join(mnt, `r${r}`));
        for (let i = 0; i < 2500; i++) fs.writeFileSync(path.join(mnt, `r${r}`, `f${i}`), 'x');
        if (r > 0) fs.rmSync(path.join(mnt, `r${r - 1}`), { recursive: true });
      }
    });
    await withMount(image, 'rw', (mnt) => {
      for (let i = 0; i < 2500; i++) fs.writeFileSync(path.join(mnt, 'r3', `g${i}`), 'y');
      fs.rmSync(path.join(mnt, 'r3', 'f7'));
      run('xfs_io', ['-x', '-c', 'shutdown -f', mnt]);
    });
    const raw = ImageFile.open(image);
    const sb = parseSuperblock(await raw.read(0, 65536), raw.size);
    const state = await inspectLog({ sb, reader: new MetadataReader(raw, sb.dblocks * sb.blockSize, 1 << 20), log: () => undefined });
    raw.close();
    assert.ok(state.cycle >= 2 && !state.clean, `log cycle ${state.cycle}`);
    const truth = path.join(work, 'wrapped-truth.img');
    fs.copyFileSync(image, truth);
    let kernel: Tree = new Map();
    let kernelStat: ReturnType<typeof kernelStatFs> | undefined;
    await withMount(truth, 'recover', (mnt) => {
      kernel = readKernelTree(mnt);
      kernelStat = kernelStatFs(mnt);
    });
    const { tree, failures, fs: reader, events } = await readerTree(image);
    assert.deepEqual(failures, []);
    assert.deepEqual(compareTrees(kernel, tree, ALL_FIELDS), []);
    assert.deepEqual(await reader.statfs(), kernelStat);
    assert.ok(kernel.has('/r3/g2499'));
    assert.ok(events.some((e) => (e as { reason?: string }).reason === 'log replayed in memory'));
  });
});

describe('a crash while a deleted file\'s extents were being freed (unfinished extent-free intents, an unlinked inode)', { skip: skipReason }, () => {
  test('the tree equals the kernel\'s recovery; statfs is within the free-space btrees\' own blocks of it', async () => {
    const image = makeImage(work, 'freeing.img', 200, []);
    await withMount(image, 'rw', (mnt) => {
      fs.writeFileSync(path.join(mnt, 'kept'), 'kept');
      fragmentedFile(path.join(mnt, 'doomed'), 12000);
    });
    await withMount(image, 'rw', (mnt) => {
      fs.rmSync(path.join(mnt, 'doomed'));
      run('xfs_io', ['-x', '-c', 'shutdown -f', mnt]);
    });
    const truth = path.join(work, 'freeing-truth.img');
    fs.copyFileSync(image, truth);
    let kernel: Tree = new Map();
    let kernelStat: ReturnType<typeof kernelStatFs> | undefined;
    await withMount(truth, 'recover', (mnt) => {
      kernel = readKernelTree(mnt);
      kernelStat = kernelStatFs(mnt);
    });
    const { tree, failures, fs: reader } = await readerTree(image);
    assert.deepEqual(failures, []);
    assert.deepEqual(compareTrees(kernel, tree, ALL_FIELDS), []);
    const st = await reader.statfs();
    assert.ok(kernelStat);
    assert.deepEqual({ ...st, bfree: 0, bavail: 0 }, { ...kernelStat, bfree: 0, bavail: 0 });
    // The kernel's frees also shrink the free-space btrees, whose blocks it keeps out of bfree: at most a few hundred here.
    assert.ok(st.bfree <= kernelStat.bfree && kernelStat.bfree - st.bfree < 400, `bfree ${st.bfree}, kernel ${kernelStat.bfree}`);
  });
});

describe('a copy of a running guest\'s disk (taken while mounted and writing) against the kernel\'s recovery of that copy', { skip: skipReason }, () => {
  test('every path and statfs equal the kernel', async () => {
    const image = makeImage(work, 'live.img', 64, []);
    const copy = path.join(work, 'live-copy.img');
    await withMount(image, 'rw', async (mnt) => {
      fs.mkdirSync(path.join(mnt, 'x'));
      for (let i = 0; i < 400; i++) fs.writeFileSync(path.join(mnt, 'x', `f${i}`), patternBytes(i * 10, String(i)));
      fs.symlinkSync('x/f1', path.join(mnt, 'link'));
      const fd = fs.openSync(path.join(mnt, 'x'), 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(mnt, 'x', `g${i}`), 'later');
      fs.copyFileSync(image, copy);
    });
    const truth = path.join(work, 'live-truth.img');
    fs.copyFileSync(copy, truth);
    let kernel: Tree = new Map();
    let kernelStat: ReturnType<typeof kernelStatFs> | undefined;
    await withMount(truth, 'recover', (mnt) => {
      kernel = readKernelTree(mnt);
      kernelStat = kernelStatFs(mnt);
    });
    const { tree, failures, fs: reader } = await readerTree(copy);
    assert.deepEqual(failures, []);
    assert.deepEqual(compareTrees(kernel, tree, ALL_FIELDS), []);
    assert.ok(kernel.has('/x/f399'));
    assert.equal(reader.needsRecovery, true);
    assert.deepEqual(await reader.statfs(), kernelStat);
  });
});

describe('v4 (crc=0, no ftype) against its prototype source tree', { skip: !hasTool('mkfs.xfs') ? 'needs xfsprogs' : undefined }, () => {
  let src: string;
  let image: string;
  before(() => {
    src = path.join(work, 'v4-src');
    fs.mkdirSync(src);
    const p = (...parts: string[]): string => path.join(src, ...parts);
    fs.mkdirSync(p('dir', 'sub'), { recursive: true });
    for (const size of [0, 1, 4095, 4096, 70_000, 1_500_000]) fs.writeFileSync(p('dir', `f${size}`), patternBytes(size, `v4-${size}`));
    fs.mkdirSync(p('big'));
    for (let n = 0; n < 1500; n++) fs.writeFileSync(p('big', `entry-${n}-${'x'.repeat(n % 60)}`), n % 5 === 0 ? String(n) : '');
    fs.symlinkSync('dir/f1', p('short'));
    fs.symlinkSync('t'.repeat(900), p('long'));
    fs.writeFileSync(p('dir', 'sub', 'mode'), 'm', { mode: 0o640 });
  });

  test('names, types, modes, owners, sizes, link targets and content equal the source', async () => {
    image = protoImage(work, 'v4.img', 320, ['-m', 'crc=0', '-n', 'ftype=0'], src);
    const expected = readKernelTree(src);
    const { tree, failures, fs: reader } = await readerTree(image);
    assert.deepEqual(failures, []);
    // mkfs.xfs -p stamps its own times and numbers; directory sizes and blocks are XFS's own.
    const dirOnly = (_: string, e: { mode: number }): ('size' | 'blocks' | 'nlink')[] => ((e.mode & 0o170000) === 0o040000 ? ['size', 'blocks', 'nlink'] : ['blocks']);
    expected.get('/')!.uid = tree.get('/')!.uid;
    expected.get('/')!.gid = tree.get('/')!.gid;
    assert.deepEqual(compareTrees(expected, tree, ['mode', 'uid', 'gid', 'size', 'nlink', 'rdev', 'link', 'content'], dirOnly), []);
    const big = await reader.lookup(reader.rootHandle, Buffer.from('big'));
    assert.ok(big !== undefined);
    const entries = await reader.readdir(big);
    assert.equal(entries.length, 1500);
    assert.ok(entries.every((e) => e.type === 'unknown'));
    const st = await reader.statfs();
    assert.equal(st.bsize, 4096);
    assert.ok(st.bfree > 0 && st.bfree < st.blocks);
  });
});
