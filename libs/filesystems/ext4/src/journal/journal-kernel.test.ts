/**
 * Journal replay against the kernel: images whose guest committed work to
 * the journal that was not yet written in place, copied while mounted,
 * read by the reader and by the kernel's recovering read-only mount of a
 * scratch copy; then crafted copies (a missing commit, checksum failures)
 * compared the same way, or with the kernel's refusal to mount.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import { Ext4 } from '../ext4';
import { FileSource } from '../file-source';
import { makeImage, makeTempDir, removeDir, run, withMount } from '../fixture-image';
import { MemorySource } from '../memory-source';
import { diffSnapshots, readerSnapshot } from '../tree-snapshot';
import { KernelView, LiveMount, copyImage, editImage, fsyncPath, kernelMounts, kernelRecovered, logBlockOffset, logdump, recoveryCopy } from './fixture-journal';

interface Variant {
  name: string;
  mkfs: string[];
  mount?: string[];
  blockSize: number;
}

const VARIANTS: Variant[] = [
  { name: 'ext4 (metadata_csum, 64bit): csum v3 journal, 64-bit tags', mkfs: ['-t', 'ext4', '-b', '4096'], blockSize: 4096 },
  { name: 'ext4 without 64bit and metadata_csum: no journal checksums, 32-bit tags', mkfs: ['-t', 'ext4', '-b', '4096', '-O', '^64bit,^metadata_csum'], blockSize: 4096 },
  { name: 'ext4 without metadata_csum, mounted journal_checksum: v1 transaction checksums', mkfs: ['-t', 'ext4', '-b', '4096', '-O', '^metadata_csum'], mount: ['journal_checksum'], blockSize: 4096 },
  { name: 'ext4 1 KiB blocks mounted journal_async_commit', mkfs: ['-t', 'ext4', '-b', '1024'], mount: ['journal_async_commit', 'data=writeback'], blockSize: 1024 },
  { name: 'ext3 (1 KiB blocks, block-mapped journal inode)', mkfs: ['-t', 'ext3', '-b', '1024'], blockSize: 1024 },
];

const SIZE_MIB = 24;

let work: string;
before(async () => {
  work = await makeTempDir('ext4-journal-');
});
after(async () => {
  await removeDir(work);
});

async function openImage(image: string, journal: 'replay' | 'ignore'): Promise<{ fs: Ext4; close: () => Promise<void>; events: Record<string, unknown>[] }> {
  const source = await FileSource.open(image);
  const events: Record<string, unknown>[] = [];
  try {
    return { fs: await Ext4.open(source, { journal, log: (e) => events.push(e) }), close: () => source.close(), events };
  } catch (err) {
    await source.close();
    throw err;
  }
}

function errnoOf(err: unknown): number | undefined {
  return err instanceof StrataError ? err.errno : undefined;
}

function liveCopy(name: string, v: Variant): Promise<{ copy: string; live: LiveMount }> {
  return recoveryCopy(work, name, SIZE_MIB, v.mkfs, v.mount);
}

for (const [i, v] of VARIANTS.entries()) {
  describe(v.name, () => {
    let copy: string;
    let live: LiveMount;
    let kernel: KernelView;
    before(async () => {
      ({ copy, live } = await liveCopy(`v${i}`, v));
      kernel = await kernelRecovered(copy, path.join(work, `v${i}-scratch.img`));
    });
    after(() => live?.stop());

    test('the copy needs recovery; ignoring the journal shows an older tree', async () => {
      const { fs, close } = await openImage(copy, 'ignore');
      try {
        assert.equal(fs.needsRecovery, true);
        assert.equal(fs.journal.replayed, false);
        assert.deepEqual(fs.replayedBlocks(), []);
        const stale = await readerSnapshot(fs, true);
        assert.ok(diffSnapshots(kernel.tree, stale).length > 0, 'the journal holds nothing the tree lacks: the test proves nothing');
        assert.equal(stale.has(Buffer.from('/last-tx').toString('hex')), false);
      } finally {
        await close();
      }
    });

    test('replayed: every path (lstat, readdir, readlink, content, xattrs) and statfs equal the kernel after recovery', async () => {
      const { fs, close, events } = await openImage(copy, 'replay');
      try {
        assert.equal(fs.needsRecovery, true);
        assert.equal(fs.journal.replayed, true);
        assert.ok(fs.journal.transactions >= 2, `${fs.journal.transactions} transactions`);
        assert.equal(fs.journal.blocks, fs.replayedBlocks().length);
        assert.ok(fs.journal.blocks > 0);
        const records = logdump(copy);
        const commits = records.filter((r) => r.type === 'commit');
        assert.equal(fs.journal.transactions, commits.length, 'debugfs logdump counts other transactions');
        assert.equal(fs.journal.firstSequence, commits[0].sequence);
        assert.equal(fs.journal.nextSequence, commits[commits.length - 1].sequence + 1);
        assert.equal(fs.journal.headBlock, commits[commits.length - 1].block + 1);
        const reader = await readerSnapshot(fs, true);
        assert.deepEqual(diffSnapshots(kernel.tree, reader), []);
        assert.ok(kernel.tree.size > 60, `only ${kernel.tree.size} paths compared`);
        assert.deepEqual(fs.statfs(), kernel.statfs);
        assert.deepEqual(events, []);
        assert.equal(await fs.journalHeadChanged(), false, 'a copy nobody writes has not moved on');
      } finally {
        await close();
      }
    });

    if (v.mount?.includes('journal_async_commit')) {
      test('async_commit: the last commit block failing its checksum ends the replay before it, as in the kernel', async () => {
        const records = logdump(copy).filter((r) => r.type === 'commit');
        const commit = records[records.length - 1];
        const image = path.join(work, `v${i}-async-bad.img`);
        copyImage(copy, image);
        editImage(image, logBlockOffset(image, commit.block, v.blockSize) + 0x38, 1, (b) => (b[0] ^= 0x40));
        const crafted = await kernelRecovered(image, path.join(work, `v${i}-async-scratch.img`));
        const { fs, close } = await openImage(image, 'replay');
        try {
          assert.equal(fs.journal.nextSequence, commit.sequence);
          const reader = await readerSnapshot(fs, true);
          assert.deepEqual(diffSnapshots(crafted.tree, reader), []);
          assert.equal(reader.has(Buffer.from('/last-tx').toString('hex')), false);
        } finally {
          await close();
        }
      });
    }

    test('block() of replayed inode-table blocks equals what the kernel wrote in place', async () => {
      const { fs, close } = await openImage(copy, 'replay');
      const recovered = await fsp.open(kernel.recovered, 'r');
      try {
        const tables = fs.inodeTables();
        const inTable = fs.replayedBlocks().filter((b) => tables.some((t) => b >= t.block && b < t.block + t.blocks));
        assert.ok(inTable.length > 0, 'no inode table block was replayed');
        for (const b of inTable) {
          const want = Buffer.alloc(fs.blockSize);
          await recovered.read(want, 0, fs.blockSize, b * fs.blockSize);
          assert.ok((await fs.block(b)).equals(want), `block ${b}`);
        }
        await assert.rejects(fs.block(fs.blocksCount), (e: unknown) => errnoOf(e) === Errno.EINVAL);
      } finally {
        await recovered.close();
        await close();
      }
    });
  });
}

describe('inodeTables against dumpe2fs', () => {
  test('each group: table block, and the initialised inodes (INODE_UNINIT, itable_unused)', async () => {
    const image = await makeImage(work, 'tables.img', 64, ['-t', 'ext4', '-b', '1024', '-N', '20000']);
    await withMount(image, false, async (mnt) => {
      for (let i = 0; i < 300; i++) await fsp.writeFile(path.join(mnt, `f${i}`), '');
    });
    const text = run('dumpe2fs', [image]);
    const { fs, close } = await openImage(image, 'replay');
    try {
      const ipg = Number(/Inodes per group:\s+(\d+)/.exec(text)?.[1]);
      const groups = text.split(/\nGroup /).slice(1).filter((g) => /^\d+:/.test(g));
      const tables = fs.inodeTables();
      assert.equal(tables.length, groups.length);
      for (const [g, body] of groups.entries()) {
        const t = tables[g];
        assert.equal(t.group, g);
        assert.equal(t.firstIno, g * ipg + 1);
        assert.equal(t.block, Number(/Inode table at (\d+)/.exec(body)?.[1]));
        const unused = Number(/(\d+) unused inodes/.exec(body)?.[1] ?? 0);
        const want = /INODE_UNINIT/.test(body.split('\n')[0]) ? 0 : ipg - unused;
        assert.equal(t.inodes, want, `group ${g}`);
        assert.equal(t.blocks, Math.ceil((want * fs.inodeSize) / fs.blockSize));
      }
      assert.ok(tables.some((t) => t.inodes === 0) && tables.some((t) => t.inodes > 0 && t.inodes < ipg), 'no partly initialised group');
    } finally {
      await close();
    }
  });
});

describe('crafted copies of a csum v3 journal', () => {
  const v = VARIANTS[0];
  let copy: string;
  let live: LiveMount;
  let full: KernelView;
  before(async () => {
    ({ copy, live } = await liveCopy('crafted', v));
    full = await kernelRecovered(copy, path.join(work, 'crafted-scratch.img'));
  });
  after(() => live?.stop());

  async function crafted(name: string, edit: (image: string) => void): Promise<string> {
    const image = path.join(work, `${name}.img`);
    copyImage(copy, image);
    edit(image);
    return image;
  }

  function lastOf(type: 'commit' | 'descriptor'): { block: number; sequence: number } {
    const records = logdump(copy).filter((r) => r.type === type);
    return records[records.length - 1];
  }

  async function sameAsKernel(image: string, expectLastTx: boolean): Promise<void> {
    const kernel = await kernelRecovered(image, path.join(work, 'k-scratch.img'));
    const { fs, close } = await openImage(image, 'replay');
    try {
      const reader = await readerSnapshot(fs, true);
      assert.deepEqual(diffSnapshots(kernel.tree, reader), []);
      assert.equal(reader.has(Buffer.from('/last-tx').toString('hex')), expectLastTx);
      assert.deepEqual(fs.statfs(), kernel.statfs);
    } finally {
      await close();
    }
  }

  test('the last commit block zeroed: that transaction is not applied, as in the kernel', async () => {
    const commit = lastOf('commit');
    const image = await crafted('no-commit', (img) => editImage(img, logBlockOffset(img, commit.block, v.blockSize), v.blockSize, (b) => b.fill(0)));
    await sameAsKernel(image, false);
    const { fs, close } = await openImage(image, 'replay');
    try {
      assert.equal(fs.journal.nextSequence, commit.sequence);
      assert.ok(diffSnapshots(full.tree, await readerSnapshot(fs, true)).length > 0);
    } finally {
      await close();
    }
  });

  test('a flipped byte in the last commit header: EIO naming the transaction, the kernel refuses to mount', async () => {
    const commit = lastOf('commit');
    const image = await crafted('bad-commit', (img) => editImage(img, logBlockOffset(img, commit.block, v.blockSize) + 0x38, 1, (b) => (b[0] ^= 0x40)));
    assert.equal(await kernelMounts(image, path.join(work, 'k-scratch.img')), false);
    const data = await fsp.readFile(image);
    await assert.rejects(Ext4.open(new MemorySource(data)), (e: unknown) => errnoOf(e) === Errno.EIO && new RegExp(`transaction ${commit.sequence} is corrupt`).test(String(e)));
    const events: Record<string, unknown>[] = [];
    const fs = await Ext4.open(new MemorySource(data), { journal: 'ignore', log: (e) => events.push(e) });
    assert.equal(fs.journal.nextSequence, commit.sequence);
    assert.ok(events.some((e) => e.event === 'ext4.journal' && /commit checksum/.test(String(e.reason))), JSON.stringify(events));
  });

  test('a flipped byte past the commit header: a partly written commit block still counts, as in the kernel', async () => {
    const commit = lastOf('commit');
    const image = await crafted('partial-commit', (img) => editImage(img, logBlockOffset(img, commit.block, v.blockSize) + 200, 1, (b) => (b[0] ^= 0x40)));
    await sameAsKernel(image, true);
  });

  test('a flipped byte in a logged data block: EIO, the kernel refuses to mount', async () => {
    const desc = lastOf('descriptor');
    const image = await crafted('bad-data', (img) => editImage(img, logBlockOffset(img, desc.block + 1, v.blockSize) + 100, 1, (b) => (b[0] ^= 0x40)));
    assert.equal(await kernelMounts(image, path.join(work, 'k-scratch.img')), false);
    await assert.rejects(openImage(image, 'replay'), (e: unknown) => errnoOf(e) === Errno.EIO && /journal data block .*checksum/.test(String(e)));
    const { fs, close } = await openImage(image, 'ignore');
    await close();
    assert.equal(fs.needsRecovery, true);
  });

  test('a flipped byte in the last descriptor block: EIO, the kernel refuses to mount', async () => {
    const desc = lastOf('descriptor');
    const image = await crafted('bad-descriptor', (img) => editImage(img, logBlockOffset(img, desc.block, v.blockSize) + v.blockSize - 100, 1, (b) => (b[0] ^= 0x40)));
    assert.equal(await kernelMounts(image, path.join(work, 'k-scratch.img')), false);
    await assert.rejects(openImage(image, 'replay'), (e: unknown) => errnoOf(e) === Errno.EIO && /invalid checksum/.test(String(e)));
  });

  test('journalHeadChanged on the live image: false until the guest commits again', async () => {
    const { fs, close } = await openImage(live.image, 'replay');
    try {
      assert.equal(fs.journal.replayed, true);
      assert.equal(await fs.journalHeadChanged(), false);
      await fsp.writeFile(path.join(live.mnt, 'after-open'), 'new');
      fsyncPath(path.join(live.mnt, 'after-open'));
      assert.equal(await fs.journalHeadChanged(), true);
    } finally {
      await close();
    }
  });
});
