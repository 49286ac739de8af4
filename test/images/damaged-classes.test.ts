import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno } from '@strata/errors';
import {
  blockOf,
  canLoopMount,
  debugfsRead,
  debugfsWrite,
  differences,
  inodeOf,
  inodeOffset,
  kernelTree,
  makeImage,
  patch,
  readBytes,
  strataTree,
  tool,
  type DamagedTree,
} from './damaged-support';

/**
 * One small generated image per class of damage the issue names, read by
 * the kernel's read-only loop mount and by strata, compared path by path:
 * the same paths listed, the same attributes, the same errno where a path
 * cannot be read. Each image is made by the test (mke2fs -d, debugfs, byte
 * edits) and removed after.
 */

const skip = canLoopMount() ? false : 'needs root, loop devices, mke2fs and debugfs';
const BS = 1024;

let work: string;

before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-damaged-'));
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Both readings of one image, which must agree path by path; returns strata's tree and the logged events. */
async function compare(name: string, intact = ['/a', '/d/one', '/sub/deep/x', '/big/n299']): Promise<{ tree: DamagedTree; events: Record<string, unknown>[] }> {
  const kernel = kernelTree(path.join(work, name));
  assert.ok(!('mountErrno' in kernel), `the kernel refused ${name}: ${'mountErrno' in kernel ? kernel.mountErrno : ''}`);
  const events: Record<string, unknown>[] = [];
  const tree = await strataTree(work, name, (e) => events.push(e));
  assert.ok(!('openErrno' in tree), `strata refused ${name}: ${'openErrno' in tree ? tree.message : ''}`);
  assert.deepEqual(differences(kernel, tree), [], `strata and the kernel differ on ${name}`);
  // The undamaged rest is all there: a damaged entry costs that entry only.
  for (const p of intact) assert.ok(tree.has(p), `${p} missing`);
  return { tree, events };
}

function errnoEntry(errno: number): string {
  return `E${errno}`;
}

describe('damaged disks read as the kernel reads them', { skip }, () => {
  test('an entry naming a deleted inode: listed, its lookup EUCLEAN, the rest of the directory intact', async () => {
    makeImage(path.join(work, 'deleted.img'));
    const ino = inodeOf(path.join(work, 'deleted.img'), '/d/two');
    debugfsWrite(path.join(work, 'deleted.img'), `clri <${ino}>`);
    const { tree, events } = await compare('deleted.img');
    assert.equal(tree.get('/d/two'), errnoEntry(Errno.EUCLEAN));
    assert.ok(tree.get('/d/three')?.startsWith('100644'));
    assert.ok(
      events.some((e) => e.event === 'traversal.damaged' && String(e.path).includes('/d/two') && e.errno === 'EUCLEAN'),
      JSON.stringify(events),
    );
    assert.equal(events.filter((e) => e.event === 'traversal.damaged' && String(e.path).includes('/d/two')).length, 1, 'logged once');
  });

  test('an inode failing its checksum: listed, its lookup EBADMSG', async () => {
    const img = path.join(work, 'inode-csum.img');
    makeImage(img);
    const at = inodeOffset(img, '/d/two', BS) + 0x10;
    patch(img, at, Buffer.from([readBytes(img, at, 1)[0] ^ 0xff]));
    const { tree } = await compare('inode-csum.img');
    assert.equal(tree.get('/d/two'), errnoEntry(Errno.EBADMSG));
  });

  test('inodes in the bg_itable_unused tail are read (the kernel reads them)', async () => {
    const img = path.join(work, 'itable-unused.img');
    makeImage(img);
    debugfsWrite(img, 'set_bg 0 itable_unused 500', 'set_bg 0 checksum calc');
    const { tree } = await compare('itable-unused.img');
    assert.ok(tree.get('/d/one')?.startsWith('100644'));
  });

  test('i_size_high of a directory is ignored without large_dir (ext4_isize)', async () => {
    const img = path.join(work, 'size-high.img');
    // Without inode checksums, so that the byte edit is all the damage there is.
    makeImage(img, { mkfs: ['-O', '^metadata_csum'] });
    const at = inodeOffset(img, '/d', BS) + 0x6c;
    const high = Buffer.alloc(4);
    high.writeUInt32LE(12);
    patch(img, at, high);
    assert.match(debugfsRead(img, 'stat /d'), /Size: 5153960\d{4}/);
    const { tree } = await compare('size-high.img');
    assert.equal(tree.get('/d')?.split(' ')[1], String(BS));
  });

  test('an unwritten extent in a directory is read as its mapped block', async () => {
    const img = path.join(work, 'unwritten-dir.img');
    makeImage(img);
    // i_block: the 12-byte extent header, then ee_block (4), ee_len (2): bit 15 of ee_len marks it unwritten.
    const lenAt = inodeOffset(img, '/d', BS) + 0x28 + 12 + 4;
    const word = readBytes(img, lenAt, 4).readUInt32LE(0);
    debugfsWrite(img, `sif /d block[4] ${(word | 0x8000) >>> 0}`);
    const { tree } = await compare('unwritten-dir.img');
    assert.ok(tree.get('/d/two')?.startsWith('100644'));
  });

  test('empty symlink targets: a slow one reads as "", a fast one of length 0 fails its lookup (EUCLEAN)', async () => {
    const img = path.join(work, 'empty-link.img');
    makeImage(img);
    debugfsWrite(img, 'symlink /fast x', `symlink /slow ${'t'.repeat(80)}`, 'sif /fast size 0', 'sif /slow size 0');
    const { tree } = await compare('empty-link.img');
    assert.equal(tree.get('/fast'), errnoEntry(Errno.EUCLEAN));
    assert.match(tree.get('/slow') ?? '', /^120777 0 .* -> $/);
  });

  test('a corrupt htree root (no metadata_csum): listing and lookups fall back to a linear search together', async () => {
    const img = path.join(work, 'htree-version.img');
    makeImage(img, { mkfs: ['-O', '^metadata_csum'] });
    const root = blockOf(img, '/big', 0);
    // dx_root_info.hash_version (byte 28 of the root block): an unknown hash makes dx_probe give up on the index.
    patch(img, root * BS + 28, Buffer.from([9]));
    const { tree } = await compare('htree-version.img');
    assert.equal([...tree.keys()].filter((p) => p.startsWith('/big/')).length, 300);
  });

  test('an htree index block failing its checksum: the listing fails with EBADMSG, its siblings are read', async () => {
    const img = path.join(work, 'htree-csum.img');
    makeImage(img);
    const root = blockOf(img, '/big', 0);
    const at = root * BS + 0x28;
    patch(img, at, Buffer.from([readBytes(img, at, 1)[0] ^ 0x55]));
    const { tree } = await compare('htree-csum.img', ['/a', '/d/one', '/sub/deep/x']);
    assert.equal(tree.get('/big/*'), errnoEntry(Errno.EBADMSG));
    assert.ok(tree.get('/big')?.startsWith('40755'));
  });

  test('a group descriptor failing its checksum is used, as the read-only mount uses it', async () => {
    const img = path.join(work, 'gd-csum.img');
    makeImage(img, { sizeMiB: 24, mkfs: ['-g', '2048'] });
    const groups = debugfsRead(img, 'stats').match(/^ Group\s+\d+:/gm)?.length ?? 0;
    assert.ok(groups > 2, `only ${groups} groups`);
    // Damage the descriptor of a group that holds inodes of the tree.
    const group = Math.floor((inodeOf(img, '/sub/deep/x') - 1) / Number(/Inodes per group:\s+(\d+)/.exec(debugfsRead(img, 'stats'))?.[1]));
    debugfsWrite(img, `set_bg ${group} checksum 0x1234`);
    const { tree } = await compare('gd-csum.img');
    assert.ok(tree.get('/sub/deep/x')?.startsWith('100644'));
  });

  test('a filesystem needing recovery from an external journal is refused, as the kernel and e2fsck refuse it', async () => {
    const img = path.join(work, 'ext-journal.img');
    const journal = path.join(work, 'journal.img');
    fs.closeSync(fs.openSync(journal, 'w'));
    fs.truncateSync(journal, 2 << 20);
    const dev = tool('losetup', ['-f', '--show', journal]).trim();
    try {
      tool('mke2fs', ['-q', '-F', '-O', 'journal_dev', '-b', String(BS), dev]);
      fs.closeSync(fs.openSync(img, 'w'));
      fs.truncateSync(img, 8 << 20);
      tool('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', String(BS), '-J', `device=${dev}`, img]);
    } finally {
      tool('losetup', ['-d', dev]);
    }
    debugfsWrite(img, 'feature needs_recovery');
    const kernel = kernelTree(img);
    assert.ok('mountErrno' in kernel, 'the kernel mounted a filesystem whose journal is elsewhere');
    assert.throws(() => tool('e2fsck', ['-n', img]), 'e2fsck -n accepted it');
    const strata = await strataTree(work, 'ext-journal.img');
    assert.ok('openErrno' in strata && strata.openErrno === Errno.EOPNOTSUPP, JSON.stringify(strata));
    assert.match(strata.message, /external journal/);
  });
});
