/**
 * Bad journals: a bad superblock magic, a tag past the end of the image, a
 * revoke count larger than its block, a log that runs onto itself, a fast
 * commit to replay; and a log whose transaction ids wrap past 2^32. Each is
 * either the kernel's answer (compared) or a clear StrataError, quickly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import { Ext4 } from '../ext4';
import { makeImage, makeTempDir, removeDir, withMount } from '../fixture-image';
import { MemorySource } from '../memory-source';
import { diffSnapshots, readerSnapshot } from '../tree-snapshot';
import { tidGeq } from './block-header';
import { crc32Be, crc32cWithoutField, journalCsumSeed } from './checksums';
import { JournalIncompat, journalSuperblockChecksum } from './journal-superblock';
import { LiveMount, copyImage, editImage, fsyncPath, kernelMounts, kernelRecovered, logBlockOffset, logdump, mountLive, recoveryCopy } from './fixture-journal';

const BS = 4096;
/** Every open here is of a small image: far below this even on a slow machine. */
const OPEN_BUDGET_MS = 3000;

let work: string;
let copy: string;
let live: LiveMount | undefined;
before(async () => {
  work = await makeTempDir('ext4-journal-robust-');
  ({ copy, live } = await recoveryCopy(work, 'csum', 24, ['-t', 'ext4', '-b', String(BS)]));
  live.stop();
  live = undefined;
});
after(async () => {
  live?.stop();
  await removeDir(work);
});

function errnoOf(err: unknown): number | undefined {
  return err instanceof StrataError ? err.errno : undefined;
}

async function crafted(name: string, edit: (image: string) => void, from = copy): Promise<string> {
  const image = path.join(work, `${name}.img`);
  copyImage(from, image);
  edit(image);
  return image;
}

/** Opens (replaying) and expects a StrataError matching errno and message, within the budget. */
async function refused(image: string, errno: number, message: RegExp): Promise<void> {
  const started = Date.now();
  await assert.rejects(Ext4.open(new MemorySource(await fsp.readFile(image))), (e: unknown) => {
    assert.equal(errnoOf(e), errno, String(e));
    assert.match(String(e), message);
    return true;
  });
  assert.ok(Date.now() - started < OPEN_BUDGET_MS, `took ${Date.now() - started} ms`);
}

/** Rewrites a descriptor or revoke block's tail checksum after an edit, as a csum v3 journal needs. */
function fixTail(image: string, logBlock: number): void {
  let seed = 0;
  editImage(image, logBlockOffset(image, 0, BS), 1024, (jsb) => (seed = journalCsumSeed(jsb.subarray(0x30, 0x40))));
  editImage(image, logBlockOffset(image, logBlock, BS), BS, (b) => b.writeUInt32BE(crc32cWithoutField(seed, b, BS - 4), BS - 4));
}

describe('checksum and id arithmetic', () => {
  test('crc32_be is CRC-32/BZIP2 without its final inversion', () => {
    assert.equal((crc32Be(0xffffffff, Buffer.from('123456789')) ^ 0xffffffff) >>> 0, 0xfc891918);
  });
  test('transaction ids compare modulo 2^32', () => {
    assert.ok(tidGeq(3, 0xfffffff0));
    assert.ok(!tidGeq(0xfffffff0, 3));
    assert.ok(tidGeq(7, 7));
  });
});

describe('refused journals', () => {
  test('a bad journal superblock magic: EIO, the kernel refuses to mount; ignore still opens', async () => {
    const image = await crafted('bad-magic', (img) => editImage(img, logBlockOffset(img, 0, BS), 4, (b) => b.writeUInt32BE(0x12345678)));
    assert.equal(await kernelMounts(image, path.join(work, 'scratch.img')), false);
    await refused(image, Errno.EIO, /journal superblock: bad magic/);
    const events: Record<string, unknown>[] = [];
    const fs = await Ext4.open(new MemorySource(await fsp.readFile(image)), { journal: 'ignore', log: (e) => events.push(e) });
    assert.equal(fs.journal.replayed, false);
    assert.ok(events.some((e) => e.event === 'ext4.journal' && /bad magic/.test(String(e.reason))));
  });

  test('a descriptor tag naming a block past the end of the image: EIO, the kernel refuses to mount', async () => {
    const desc = logdump(copy).find((r) => r.type === 'descriptor');
    assert.ok(desc);
    const image = await crafted('tag-past-end', (img) => {
      editImage(img, logBlockOffset(img, desc.block, BS) + 12, 12, (tag) => {
        tag.writeUInt32BE(0xfffffff0, 0);
        tag.writeUInt32BE(0x10, 8);
      });
      fixTail(img, desc.block);
    });
    assert.equal(await kernelMounts(image, path.join(work, 'scratch.img')), false);
    await refused(image, Errno.EIO, /tag names block \d+, past the end of the filesystem image/);
  });

  test('a revoke block whose count exceeds the block: EIO, the kernel refuses to mount', async () => {
    const revoke = logdump(copy).find((r) => r.type === 'revoke');
    assert.ok(revoke, 'the log has no revoke block');
    const image = await crafted('revoke-count', (img) => {
      editImage(img, logBlockOffset(img, revoke.block, BS) + 12, 4, (b) => b.writeUInt32BE(BS));
      fixTail(img, revoke.block);
    });
    assert.equal(await kernelMounts(image, path.join(work, 'scratch.img')), false);
    await refused(image, Errno.EIO, /r_count 4096 exceeds/);
  });

  test('a log that runs onto itself: EIO (the kernel replays what precedes the overlap)', async () => {
    // A hand-written log in a 1024-block journal without checksums: two transactions of 500
    // blocks, then a third whose 100 blocks would wrap past the log's own start.
    const clean = await makeImage(work, 'wrap-base.img', 32, ['-t', 'ext4', '-b', String(BS), '-O', '^metadata_csum,^64bit', '-J', 'size=4', '-E', 'lazy_journal_init=0']);
    const image = await crafted(
      'wraps',
      (img) => {
        const header = (type: number, seq: number): Buffer => {
          const b = Buffer.alloc(BS);
          b.writeUInt32BE(0xc03b3998, 0);
          b.writeUInt32BE(type, 4);
          b.writeUInt32BE(seq, 8);
          return b;
        };
        const descriptor = (seq: number, tags: number): Buffer => {
          const b = header(1, seq);
          for (let i = 0; i < tags; i++) {
            b.writeUInt32BE(7000 + i, 12 + i * 8);
            b.writeUInt16BE(i === tags - 1 ? 0xa : 0x2, 12 + i * 8 + 6);
          }
          return b;
        };
        const put = (logBlock: number, b: Buffer): void => editImage(img, logBlockOffset(img, logBlock, BS), BS, (dst) => b.copy(dst));
        put(1, descriptor(100, 500));
        put(502, header(2, 100));
        put(503, descriptor(101, 500));
        put(1004, header(2, 101));
        put(1005, descriptor(102, 100));
        editImage(img, logBlockOffset(img, 0, BS), 1024, (jsb) => {
          jsb.writeUInt32BE(100, 0x18);
          jsb.writeUInt32BE(1, 0x1c);
        });
        // needs_recovery in the ext4 superblock (no metadata_csum: no checksum to redo).
        editImage(img, 1024 + 0x60, 4, (b) => b.writeUInt32LE(b.readUInt32LE(0) | 0x4));
      },
      clean,
    );
    await refused(image, Errno.EIO, /runs over more than the 1023 blocks of the journal \(it wraps onto itself\)/);
    assert.equal(await kernelMounts(image, path.join(work, 'scratch.img')), true);
  });
});

describe('live journals', () => {
  test('transaction ids wrapping past 2^32: replay crosses the wrap and equals the kernel', async () => {
    const image = await makeImage(work, 'seqwrap.img', 24, ['-t', 'ext4', '-b', String(BS), '-E', 'lazy_itable_init=0,lazy_journal_init=0']);
    // A first mount that logs something gives the journal superblock its csum v3 feature (mke2fs leaves it to the kernel).
    await withMount(image, false, (mnt) => fsp.writeFile(path.join(mnt, 'first'), 'first'));
    editImage(image, logBlockOffset(image, 0, BS), 1024, (jsb) => {
      assert.ok(jsb.readUInt32BE(0x28) & JournalIncompat.CSUM_V3);
      jsb.writeUInt32BE(0xfffffff0, 0x18);
      jsb.writeUInt32BE(journalSuperblockChecksum(jsb), 0xfc);
    });
    live = await mountLive(image);
    try {
      for (let i = 0; i < 24; i++) {
        const f = path.join(live.mnt, `f${i}`);
        await fsp.writeFile(f, `file ${i}\n`.repeat(i + 1));
        fsyncPath(f);
      }
      copyImage(image, path.join(work, 'seqwrap-copy.img'));
    } finally {
      live.stop();
      live = undefined;
    }
    const wrapped = path.join(work, 'seqwrap-copy.img');
    const kernel = await kernelRecovered(wrapped, path.join(work, 'scratch.img'));
    const fs = await Ext4.open(new MemorySource(await fsp.readFile(wrapped)));
    assert.equal(fs.journal.replayed, true);
    assert.ok(fs.journal.firstSequence >= 0xfffffff0, `first ${fs.journal.firstSequence}`);
    assert.ok(fs.journal.nextSequence < 0x100, `next ${fs.journal.nextSequence}`);
    assert.ok(fs.journal.transactions >= 20, `${fs.journal.transactions} transactions`);
    assert.deepEqual(diffSnapshots(kernel.tree, await readerSnapshot(fs, true)), []);
  });

  test('an open, unlinked file at copy time: the tree equals the kernel; statfs still counts the orphan (the kernel deletes it)', async () => {
    const image = await makeImage(work, 'orphan.img', 24, ['-t', 'ext4', '-b', String(BS), '-E', 'lazy_itable_init=0,lazy_journal_init=0']);
    const orphanBlocks = 768;
    live = await mountLive(image);
    let fd: fsp.FileHandle | undefined;
    try {
      const big = path.join(live.mnt, 'big');
      await fsp.writeFile(big, Buffer.alloc(orphanBlocks * BS, 1));
      await fsp.writeFile(path.join(live.mnt, 'keep'), 'k');
      fsyncPath(big);
      fsyncPath(live.mnt);
      fd = await fsp.open(big, 'r');
      await fsp.unlink(big);
      fsyncPath(path.join(live.mnt, 'keep'));
      fsyncPath(live.mnt);
      copyImage(image, path.join(work, 'orphan-copy.img'));
    } finally {
      await fd?.close();
      live.stop();
      live = undefined;
    }
    const orphanCopy = path.join(work, 'orphan-copy.img');
    const kernel = await kernelRecovered(orphanCopy, path.join(work, 'scratch.img'));
    const fs = await Ext4.open(new MemorySource(await fsp.readFile(orphanCopy)));
    assert.deepEqual(diffSnapshots(kernel.tree, await readerSnapshot(fs, true)), []);
    const st = fs.statfs();
    assert.deepEqual(
      { ...st, bfree: st.bfree + orphanBlocks, bavail: st.bavail + orphanBlocks, ffree: st.ffree + 1 },
      kernel.statfs,
      'the difference is exactly the orphan inode and its blocks',
    );
  });

  test('fast commits to replay: EOPNOTSUPP naming fast_commit (the kernel replays them)', async () => {
    const image = await makeImage(work, 'fc.img', 24, ['-t', 'ext4', '-b', String(BS), '-O', 'fast_commit', '-E', 'lazy_itable_init=0,lazy_journal_init=0']);
    live = await mountLive(image);
    try {
      // A first full commit, then an fsync that only needs a fast commit.
      const f = path.join(live.mnt, 'fc-file');
      await fsp.writeFile(f, 'one');
      fsyncPath(f);
      fsyncPath(live.mnt);
      await fsp.appendFile(f, ' two');
      fsyncPath(f);
      copyImage(image, path.join(work, 'fc-copy.img'));
    } finally {
      live.stop();
      live = undefined;
    }
    const fcCopy = path.join(work, 'fc-copy.img');
    assert.equal(await kernelMounts(fcCopy, path.join(work, 'scratch.img')), true);
    await refused(fcCopy, Errno.EOPNOTSUPP, /fast_commit/);
    const fs = await Ext4.open(new MemorySource(await fsp.readFile(fcCopy)), { journal: 'ignore' });
    assert.equal(fs.needsRecovery, true);
  });
});
