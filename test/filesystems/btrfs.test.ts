/**
 * The btrfs reader against the kernel: images made by mkfs.btrfs, filled
 * through read-write loop mounts with each compression option, then every
 * path of the top level (subvolid=5, where every subvolume and snapshot is
 * a directory) compared with the kernel's read-only mount: lstat, readlink,
 * content, xattrs; st_dev partition against devIndex; statfs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Btrfs } from '@strata/btrfs';
import { FileSource } from '@strata/ext4';
import {
  fillCompressed,
  fillGeneral,
  fillSubvolumes,
  kernelDevices,
  kernelSkipReason,
  kernelStatfs,
  makeImage,
  tempDir,
  withMount,
} from '@strata/btrfs/dist/test-fixture';
import { readFilesystemTree } from '../support/filesystem-tree';
import { ALL_FIELDS, compareTrees, readKernelTree, type Tree } from '../support/tree-snapshot';
import type { Filesystem, FsStatFs } from '@strata/filesystem';

interface Variant {
  name: string;
  mkfs: string[];
  bigDir: number;
}

const VARIANTS: Variant[] = [
  { name: 'single metadata, crc32c, no-holes', mkfs: ['-m', 'single', '-d', 'single'], bigDir: 3000 },
  { name: 'DUP metadata, sha256, explicit holes (^no-holes), 64 KiB nodes', mkfs: ['-m', 'dup', '--csum', 'sha256', '-O', '^no-holes', '-n', '65536'], bigDir: 800 },
];

const skip = kernelSkipReason();

/** Path → devIndex as the reader reports it. */
async function readerDevices(fsys: Filesystem): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const visit = async (rel: Buffer, handle: number): Promise<void> => {
    const n = await fsys.node(handle);
    out.set(rel.toString('latin1'), n.devIndex);
    if ((n.mode & 0o170000) !== 0o040000) return;
    for (const e of await fsys.readdir(handle)) await visit(rel.length === 1 ? Buffer.concat([rel, e.name]) : Buffer.concat([rel, Buffer.from('/'), e.name]), e.handle);
  };
  await visit(Buffer.from('/'), fsys.rootHandle);
  return out;
}

/** Paths grouped by equal value, each group as a sorted list, groups sorted: the partition a labelling induces. */
function partition(labels: Map<string, number>): string[][] {
  const groups = new Map<number, string[]>();
  for (const [p, v] of labels) {
    const g = groups.get(v) ?? [];
    g.push(p);
    groups.set(v, g);
  }
  return [...groups.values()].map((g) => g.sort()).sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

let work: string;
before(() => {
  if (!skip) work = tempDir('btrfs-kernel-');
});
after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

for (const [i, v] of VARIANTS.entries()) {
  describe(`btrfs ${v.name}`, { skip }, () => {
    let image: string;
    let kernel: Tree;
    let devs: Map<string, number>;
    let kstat: FsStatFs;
    before(async () => {
      image = makeImage(work, `v${i}.img`, 400, v.mkfs);
      await withMount(image, 'rw', 'compress=zstd', (mnt) => {
        fillGeneral(mnt, v.bigDir);
        fillCompressed(`${mnt}/zstd`, 'zstd', 10);
        fillSubvolumes(mnt);
      });
      await withMount(image, 'rw', 'compress-force=lzo', (mnt) => fillCompressed(`${mnt}/lzo`, 'lzo', 20));
      await withMount(image, 'rw', 'compress-force=zlib:9', (mnt) => fillCompressed(`${mnt}/zlib`, 'zlib', 30));
      await withMount(image, 'rw', 'compress-force=zstd:15', (mnt) => fillCompressed(`${mnt}/root/zstd15`, 'zstd15', 40));
      await withMount(image, 'ro', 'subvolid=5', (mnt) => {
        kernel = readKernelTree(mnt);
        devs = kernelDevices(mnt);
        kstat = kernelStatfs(mnt);
      });
    });

    test('every path: lstat, readlink, content and xattrs equal the kernel', async () => {
      const source = await FileSource.open(image);
      try {
        const events: Record<string, unknown>[] = [];
        const fsys = await Btrfs.open(source, { log: (e) => events.push(e) });
        assert.equal(fsys.needsRecovery, false);
        const { tree, failures } = await readFilesystemTree(fsys);
        assert.deepEqual(failures, []);
        // The kernel stamps its empty-subvolume stubs (ino 2) with the time of the lookup.
        const diffs = compareTrees(kernel, tree, ALL_FIELDS, (_p, info) => (info.ino === 2 ? ['mtimeNs'] : []));
        assert.deepEqual(diffs, []);
        assert.ok(kernel.size > v.bigDir + 100, `only ${kernel.size} paths compared`);
        assert.deepEqual(events, []);
      } finally {
        await source.close();
      }
    });

    test('paths share devIndex exactly where the kernel gives them the same st_dev', async () => {
      const source = await FileSource.open(image);
      try {
        const fsys = await Btrfs.open(source);
        const ours = await readerDevices(fsys);
        assert.deepEqual(partition(ours), partition(devs));
        assert.ok(new Set(devs.values()).size >= 6, 'too few subvolumes to be a test');
      } finally {
        await source.close();
      }
    });

    test('subvolumes: default, by id, listing', async () => {
      const source = await FileSource.open(image);
      try {
        const fsys = await Btrfs.open(source);
        assert.equal(await fsys.defaultSubvolumePath(), '/root');
        const subs = await fsys.subvolumes();
        const paths = subs.map((s) => s.path).sort();
        assert.deepEqual(paths, ['/', '/.snapshots/3/snapshot', '/.snapshots/ro', '/home', '/home-snap', '/root', '/root/nested', '/root/nested-snap', '/root/nested/deeper']);
        for (const s of subs) {
          assert.equal(await fsys.subvolumePathById(s.id), s.path);
          assert.equal(s.readOnly, s.path === '/.snapshots/ro');
        }
      } finally {
        await source.close();
      }
    });

    test('statfs equals the kernel', async () => {
      const source = await FileSource.open(image);
      try {
        const fsys = await Btrfs.open(source);
        const st = await fsys.statfs();
        assert.deepEqual(st, kstat);
      } finally {
        await source.close();
      }
    });
  });
}
