/**
 * A crashed guest's btrfs: data fsync'd after the last commit lives only in
 * the log tree. The image is copied while still mounted (commit=300 keeps
 * the transaction open), then: the reader's replay against the kernel's
 * mount of a writable scratch copy (which replays the log), and
 * `journal: 'ignore'` against the kernel's `rescue=nologreplay` mount.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Btrfs } from '@strata/btrfs';
import { isStrataError } from '@strata/errors';
import { crc32c, type ByteSource } from '@strata/filesystem';
import { FileSource } from '@strata/ext4';
import { bytes, kernelSkipReason, makeImage, run, tempDir } from '@strata/btrfs/dist/test-fixture';
import { readFilesystemTree } from '../support/filesystem-tree';
import { ALL_FIELDS, compareTrees, readKernelTree, type Tree } from '../support/tree-snapshot';

const skip = kernelSkipReason();

function fsync(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The committed state, then changes made durable only by fsync (the log), then a copy of the live image. */
async function crashedImage(work: string): Promise<string> {
  const image = makeImage(work, 'live.img', 300, []);
  const crashed = path.join(work, 'crashed.img');
  const mnt = tempDir('btrfs-log-mnt-');
  const dev = run('losetup', ['-f', '--show', image]).trim();
  try {
    run('mount', ['-o', 'rw,commit=300,compress=zstd', dev, mnt]);
    try {
      const d = path.join(mnt, 'd');
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'appended'), 'committed\n');
      fs.writeFileSync(path.join(d, 'overwritten'), bytes(300_000, 1, false));
      fs.writeFileSync(path.join(d, 'truncated'), bytes(200_000, 2, true));
      fs.writeFileSync(path.join(d, 'unlinked'), 'gone');
      fs.writeFileSync(path.join(d, 'linked'), 'one name, then two');
      fs.linkSync(path.join(d, 'linked'), path.join(d, 'second-name-removed'));
      fs.writeFileSync(path.join(d, 'xattrs'), 'x');
      fs.writeFileSync(path.join(d, 'to-rename'), 'renamed later');
      fs.writeFileSync(path.join(d, 'recreated'), 'the committed one');
      fs.writeFileSync(path.join(d, 'grown'), 'short');
      fs.mkdirSync(path.join(mnt, 'e'));
      fs.mkdirSync(path.join(d, 'removed-tree', 'sub'), { recursive: true });
      fs.writeFileSync(path.join(d, 'removed-tree', 'sub', 'file'), 'in a removed tree');
      fs.writeFileSync(path.join(d, 'compressed'), bytes(400_000, 8, true));
      run('setfattr', ['-n', 'user.kept', '-v', 'old', path.join(d, 'xattrs')]);
      run('setfattr', ['-n', 'user.removed', '-v', 'old', path.join(d, 'xattrs')]);
      run('btrfs', ['subvolume', 'create', path.join(mnt, 'sub')]);
      fs.writeFileSync(path.join(mnt, 'sub', 'before'), 'before');
      run('sync', []);

      fs.writeFileSync(path.join(d, 'new'), 'new after commit\n');
      fsync(path.join(d, 'new'));
      fs.appendFileSync(path.join(d, 'appended'), bytes(50_000, 3, true));
      fsync(path.join(d, 'appended'));
      const fd = fs.openSync(path.join(d, 'overwritten'), 'r+');
      fs.writeSync(fd, bytes(10_000, 4, true), 0, 10_000, 100_000);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.truncateSync(path.join(d, 'truncated'), 70_001);
      fsync(path.join(d, 'truncated'));
      fs.unlinkSync(path.join(d, 'unlinked'));
      fs.unlinkSync(path.join(d, 'second-name-removed'));
      fs.linkSync(path.join(d, 'linked'), path.join(d, 'third-name'));
      fsync(path.join(d, 'linked'));
      fsync(d);
      run('setfattr', ['-n', 'user.kept', '-v', 'new value', path.join(d, 'xattrs')]);
      run('setfattr', ['-x', 'user.removed', path.join(d, 'xattrs')]);
      run('setfattr', ['-n', 'user.added', '-v', 'added', path.join(d, 'xattrs')]);
      fsync(path.join(d, 'xattrs'));
      fs.linkSync(path.join(d, 'appended'), path.join(mnt, 'e', 'link-from-elsewhere'));
      fsync(path.join(d, 'appended'));
      fs.unlinkSync(path.join(d, 'recreated'));
      fs.writeFileSync(path.join(d, 'recreated'), 'a new inode under the old name');
      fsync(path.join(d, 'recreated'));
      fs.truncateSync(path.join(d, 'grown'), 3_000_000);
      fsync(path.join(d, 'grown'));
      fs.symlinkSync('appended', path.join(d, 'new-symlink'));
      fs.rmSync(path.join(d, 'removed-tree'), { recursive: true });
      const cfd = fs.openSync(path.join(d, 'compressed'), 'r+');
      fs.writeSync(cfd, bytes(30_000, 9, true), 0, 30_000, 150_000);
      fs.fsyncSync(cfd);
      fs.closeSync(cfd);
      run('setfattr', ['-n', 'user.on-dir', '-v', 'dir xattr', d]);
      fsync(d);
      fs.mkdirSync(path.join(d, 'newdir'));
      fs.writeFileSync(path.join(d, 'newdir', 'inside'), bytes(9000, 5, true));
      fsync(path.join(d, 'newdir', 'inside'));
      fsync(path.join(d, 'newdir'));
      fs.writeFileSync(path.join(d, 'sparse'), '');
      const sfd = fs.openSync(path.join(d, 'sparse'), 'r+');
      fs.writeSync(sfd, bytes(8192, 6, false), 0, 8192, 1 << 20);
      fs.fsyncSync(sfd);
      fs.closeSync(sfd);
      fs.writeFileSync(path.join(d, 'prealloc'), 'abc');
      run('fallocate', ['-o', '65536', '-l', '131072', path.join(d, 'prealloc')]);
      fsync(path.join(d, 'prealloc'));
      fs.writeFileSync(path.join(mnt, 'sub', 'after'), bytes(20_000, 7, true));
      fsync(path.join(mnt, 'sub', 'after'));
      fs.renameSync(path.join(d, 'to-rename'), path.join(d, 'renamed'));
      fsync(path.join(d, 'renamed'));
      run('cp', ['--sparse=always', image, crashed]);
    } finally {
      run('umount', [mnt]);
    }
  } finally {
    run('losetup', ['-d', dev]);
    fs.rmdirSync(mnt);
  }
  return crashed;
}

/** The kernel's view of a scratch copy of `image`, mounted read-only with `options` (a writable device: it may replay). */
async function kernelView(work: string, image: string, name: string, options: string): Promise<Tree> {
  const scratch = path.join(work, name);
  run('cp', ['--sparse=always', image, scratch]);
  const mnt = tempDir('btrfs-log-ro-');
  const dev = run('losetup', ['-f', '--show', scratch]).trim();
  try {
    run('mount', ['-o', options, dev, mnt]);
    try {
      return readKernelTree(mnt);
    } finally {
      run('umount', [mnt]);
    }
  } finally {
    run('losetup', ['-d', dev]);
    fs.rmdirSync(mnt);
    fs.rmSync(scratch, { force: true });
  }
}

describe('btrfs log tree (fsync after the last commit)', { skip }, () => {
  let work: string;
  let crashed: string;
  let replayed: Tree;
  let committed: Tree;
  before(async () => {
    work = tempDir('btrfs-log-');
    crashed = await crashedImage(work);
    replayed = await kernelView(work, crashed, 'replay.img', 'ro,subvolid=5');
    committed = await kernelView(work, crashed, 'noreplay.img', 'ro,rescue=nologreplay,subvolid=5');
  });
  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('replayed in memory: every path equals the kernel after its replay', async () => {
    const source = await FileSource.open(crashed);
    try {
      const events: Record<string, unknown>[] = [];
      const fsys = await Btrfs.open(source, { log: (e) => events.push(e) });
      assert.equal(fsys.needsRecovery, true);
      assert.deepEqual(events.map((e) => [e.event, e.replayed, e.subvolumes]), [['btrfs.log-tree', true, 2]]);
      const { tree, failures } = await readFilesystemTree(fsys);
      assert.deepEqual(failures, []);
      assert.deepEqual(compareTrees(replayed, tree, ALL_FIELDS), []);
      // The log mattered: the committed state differs.
      assert.ok(compareTrees(committed, replayed, ALL_FIELDS).length > 10);
    } finally {
      await source.close();
    }
  });

  test("journal: 'ignore' shows the committed state, as the kernel's nologreplay mount", async () => {
    const source = await FileSource.open(crashed);
    try {
      const events: Record<string, unknown>[] = [];
      const fsys = await Btrfs.open(source, { journal: 'ignore', log: (e) => events.push(e) });
      assert.equal(fsys.needsRecovery, true);
      assert.equal(events[0]?.replayed, false);
      const { tree, failures } = await readFilesystemTree(fsys);
      assert.deepEqual(failures, []);
      assert.deepEqual(compareTrees(committed, tree, ALL_FIELDS), []);
    } finally {
      await source.close();
    }
  });

  test('hostile log trees (checksums recomputed after each mutation): replay fails with a StrataError or yields a tree, never anything else', async () => {
    const image = fs.readFileSync(crashed);
    const nodesize = image.readUInt32LE(0x10000 + 148);
    const reads = (journal: 'replay' | 'ignore'): Promise<Set<number>> => {
      const seen = new Set<number>();
      const src: ByteSource = { size: image.length, read: async (o, l) => (l === nodesize && seen.add(o), Buffer.from(image.subarray(o, o + l))) };
      return Btrfs.open(src, { journal }).then(() => seen);
    };
    const ignore = await reads('ignore');
    const logBlocks = [...(await reads('replay'))].filter((o) => !ignore.has(o));
    assert.ok(logBlocks.length >= 2, `${logBlocks.length} log blocks`);
    let x = 7;
    const next = (n: number): number => {
      x = (x * 1103515245 + 12345) >>> 0;
      return x % n;
    };
    for (let round = 0; round < 60; round++) {
      const at = logBlocks[next(logBlocks.length)];
      const block = Buffer.from(image.subarray(at, at + nodesize));
      for (let i = 0, n = 1 + next(6); i < n; i++) block[101 + next(nodesize - 101)] = next(256);
      if (round % 3 === 0) for (let i = 0; i < 4; i++) block[101 + next(400)] = next(256);
      block.writeUInt32LE(~crc32c(0xffffffff, block, 32, nodesize) >>> 0, 0);
      const src: ByteSource = {
        size: image.length,
        read: async (o, l) => {
          const out = Buffer.from(image.subarray(o, o + l));
          if (o <= at && at < o + l) block.copy(out, at - o, 0, Math.min(nodesize, o + l - at));
          return out;
        },
      };
      const internal: unknown[] = [];
      try {
        const fsys = await Btrfs.open(src, { log: (e) => e.event === 'btrfs.internal' && internal.push(e) });
        await readFilesystemTree(fsys);
        // Every failure inside the walk was a StrataError made on purpose, not a wrapped exception.
        assert.deepEqual(internal, [], `round ${round}`);
      } catch (err) {
        assert.ok(isStrataError(err), `round ${round}: ${String(err)}`);
      }
    }
  });
});
