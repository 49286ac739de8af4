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
import type { ByteSource } from '@strata/filesystem';
import { FileSource } from '@strata/ext4';
import {
  fillCompressed,
  fillGeneral,
  fillSubvolumes,
  kernelDevices,
  kernelSkipReason,
  kernelStatfs,
  makeImage,
  run,
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
  dup: boolean;
}

/** A file source that remembers the offsets of node-sized reads (tree blocks). */
class RecordingSource implements ByteSource {
  readonly treeReads: number[] = [];
  constructor(
    private readonly inner: FileSource,
    private readonly nodesize: number,
  ) {}
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, length: number): Promise<Buffer> {
    if (length === this.nodesize) this.treeReads.push(offset);
    return this.inner.read(offset, length);
  }
}

const VARIANTS: Variant[] = [
  { name: 'single metadata, crc32c, no-holes, 4 KiB nodes (deep trees)', mkfs: ['-m', 'single', '-d', 'single', '-n', '4096'], bigDir: 3000, dup: false },
  { name: 'DUP metadata, sha256, explicit holes (^no-holes), 64 KiB nodes', mkfs: ['-m', 'dup', '--csum', 'sha256', '-O', '^no-holes', '-n', '65536'], bigDir: 800, dup: true },
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
        assert.equal(await fsys.lookupPath('/root/nope'), undefined);
        const subs = await fsys.subvolumes();
        const paths = subs.map((s) => s.path).sort();
        assert.deepEqual(paths, ['/', '/.snapshots/3/home-snap-moved', '/.snapshots/3/snapshot', '/.snapshots/ro', '/.snapshots/top', '/home', '/root', '/root/nested', '/root/nested-snap', '/root/nested/deeper']);
        for (const s of subs) {
          assert.equal(await fsys.subvolumePathById(s.id), s.path);
          // The path leads to that subvolume's root directory (st_ino 256, its own devIndex).
          const h = await fsys.lookupPath(s.path);
          assert.ok(h !== undefined, s.path);
          const n = await fsys.node(h);
          assert.deepEqual([n.ino, n.devIndex], [256, s.id]);
          assert.equal(s.readOnly, s.path === '/.snapshots/ro' || s.path === '/.snapshots/top');
        }
      } finally {
        await source.close();
      }
    });

    test('the image holds what the fill meant to exercise (compressed, inline-compressed, offset and prealloc extents)', () => {
      const dump = run('btrfs', ['inspect-internal', 'dump-tree', image]);
      for (const [what, re] of [
        ['zlib extent', /extent compression 1 \(zlib\)/],
        ['lzo extent', /extent compression 2 \(lzo\)/],
        ['zstd extent', /extent compression 3 \(zstd\)/],
        ['compressed inline extent', /inline extent data size \d+ ram_bytes \d+ compression [1-3]/],
        ['extent referenced at an offset', /extent data offset [1-9]\d* nr/],
        ['prealloc extent', /type 2 \(prealloc\)/],
        ['ROOT_REF', /ROOT_REF/],
        ...(v.mkfs.includes('^no-holes') ? [['explicit hole', /extent data disk byte 0 nr 0/] as [string, RegExp]] : []),
        ...(v.mkfs.includes('4096') ? [['tree of three or more levels', /^node \d+ level [2-7] /m] as [string, RegExp]] : []),
      ] as [string, RegExp][]) {
        assert.match(dump, re, `no ${what} in the image`);
      }
      assert.equal((kernel.get('/special/sock')?.mode ?? 0) & 0o170000, 0o140000);
      assert.equal((kernel.get('/special/fifo')?.mode ?? 0) & 0o170000, 0o010000);
      assert.match(kernel.get('/xattrs/acl-file')?.xattrs ?? '', /system\.posix_acl_access=/);
      assert.match(kernel.get('/xattrs/acl-dir')?.xattrs ?? '', /system\.posix_acl_default=/);
      assert.match(kernel.get('/xattrs/acl-dir/inherits')?.xattrs ?? '', /system\.posix_acl_access=/);
      assert.equal(kernel.get('/links/target')?.nlink, 5);
    });

    test('a damaged tree block: the other DUP copy is read (event), or the damage stays with what that block holds', async () => {
      const copy = `${image}.damaged`;
      run('cp', ['--sparse=always', image, copy]);
      try {
        const n = v.mkfs.indexOf('-n');
        const nodesize = n >= 0 ? Number(v.mkfs[n + 1]) : 16384;
        const probeFile = await FileSource.open(copy);
        const probe = new RecordingSource(probeFile, nodesize);
        try {
          const fsys0 = await Btrfs.open(probe);
          const big = await fsys0.lookup(fsys0.rootHandle, Buffer.from('big'));
          assert.ok(big !== undefined);
          await fsys0.readdir(big);
        } finally {
          await probeFile.close();
        }
        // The last block read for the big directory's listing: a leaf deep in the fs tree.
        const victim = probe.treeReads[probe.treeReads.length - 1];
        assert.ok(victim !== undefined);
        const fd = fs.openSync(copy, 'r+');
        try {
          fs.writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, victim + 200);
        } finally {
          fs.closeSync(fd);
        }
        const source = await FileSource.open(copy);
        try {
          const events: Record<string, unknown>[] = [];
          const fsys = await Btrfs.open(source, { log: (e) => events.push(e) });
          const { tree, failures } = await readFilesystemTree(fsys);
          if (v.dup) {
            assert.deepEqual(failures, []);
            assert.deepEqual(compareTrees(kernel, tree, ALL_FIELDS, (_p, info) => (info.ino === 2 ? ['mtimeNs'] : [])), []);
            assert.ok(events.some((e) => e.event === 'btrfs.mirror'), JSON.stringify(events));
          } else {
            assert.ok(failures.length > 0, 'a corrupt single-copy block went unnoticed');
            assert.ok(failures.every((f) => /checksum mismatch/.test(f.message)), JSON.stringify(failures.slice(0, 3)));
            // The leaf held part of /big's index: that listing fails; everything outside /big is still there.
            // (The snapshot of the top level shares that leaf.)
            const outside = [...kernel.keys()].filter((p) => !p.startsWith('/big/') && !p.startsWith('/.snapshots/top/big/'));
            assert.deepEqual(outside.filter((p) => !tree.has(p)), []);
          }
        } finally {
          await source.close();
        }
      } finally {
        fs.rmSync(copy, { force: true });
      }
    });

    test('a corrupt data sector: EIO for reads that cover it (data checksum), other files unaffected', async () => {
      const copy = `${image}.datacorrupt`;
      run('cp', ['--sparse=always', image, copy]);
      try {
        const probeFile = await FileSource.open(copy);
        let dataAt: number | undefined;
        try {
          const fsys0 = await Btrfs.open(probeFile);
          const files = await fsys0.lookup(fsys0.rootHandle, Buffer.from('files'));
          const big = files === undefined ? undefined : await fsys0.lookup(files, Buffer.from('big'));
          assert.ok(big !== undefined);
          const rec: ByteSource = { size: probeFile.size, read: async (o, l) => (l > 65536 && dataAt === undefined && (dataAt = o), probeFile.read(o, l)) };
          const fsys1 = await Btrfs.open(rec);
          await fsys1.read(big, 0, 1 << 20);
        } finally {
          await probeFile.close();
        }
        assert.ok(dataAt !== undefined, 'no data read seen');
        const fd = fs.openSync(copy, 'r+');
        try {
          fs.writeSync(fd, Buffer.from([0x5a, 0xa5, 0x5a]), 0, 3, dataAt + 5000);
        } finally {
          fs.closeSync(fd);
        }
        // The kernel's answer for the same sectors.
        await withMount(copy, 'ro', 'subvolid=5', (mnt) => {
          const kfd = fs.openSync(`${mnt}/files/big`, 'r');
          try {
            assert.throws(() => fs.readSync(kfd, Buffer.alloc(4096), 0, 4096, 4096), (e: NodeJS.ErrnoException) => e.code === 'EIO');
            assert.equal(fs.readSync(kfd, Buffer.alloc(4096), 0, 4096, 8192), 4096);
          } finally {
            fs.closeSync(kfd);
          }
        });
        const source = await FileSource.open(copy);
        try {
          const fsys = await Btrfs.open(source);
          const files = await fsys.lookup(fsys.rootHandle, Buffer.from('files'));
          assert.ok(files !== undefined);
          const big = await fsys.lookup(files, Buffer.from('big'));
          assert.ok(big !== undefined);
          await assert.rejects(fsys.read(big, 4096, 4096), (e: unknown) => e instanceof Error && (e as { errno?: number }).errno === 5 && /checksum/.test(e.message));
          assert.equal((await fsys.read(big, 8192, 4096)).length, 4096);
          const { failures } = await readFilesystemTree(fsys);
          // The snapshot of the top level shares the extent.
          assert.deepEqual(failures.map((f) => f.path).sort(), ['/.snapshots/top/files/big', '/files/big']);
        } finally {
          await source.close();
        }
      } finally {
        fs.rmSync(copy, { force: true });
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

describe('btrfs statfs of other layouts (mkfs --rootdir, read-only kernel mount; 4 KiB nodes and DUP metadata are the variants above)', { skip }, () => {
  for (const [name, args] of [
    ['mixed block groups', ['--mixed']],
    ['DUP data and metadata', ['-d', 'dup', '-m', 'dup']],
  ] as [string, string[]][]) {
    test(name, async () => {
      const dir = tempDir('btrfs-statfs-');
      try {
        const src = `${dir}/src`;
        fs.mkdirSync(src);
        for (let i = 0; i < 50; i++) fs.writeFileSync(`${src}/f${i}`, Buffer.alloc(i * 3000, i));
        const image = makeImage(dir, 'img', 300, args, src);
        const kstat = await withMount(image, 'ro', 'subvolid=5', (mnt) => kernelStatfs(mnt));
        const source = await FileSource.open(image);
        try {
          assert.deepEqual(await (await Btrfs.open(source)).statfs(), kstat);
        } finally {
          await source.close();
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
