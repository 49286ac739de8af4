/**
 * metadata_csum: one corrupted byte in one structure makes that object EIO
 * (with a log event naming it) while the rest of the filesystem reads on.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { Errno, StrataError } from '@strata/errors';
import { Ext4 } from './ext4';
import { debugfs, makeImage, makeTempDir, removeDir, withMount } from './fixture-image';
import { MemorySource } from './memory-source';
import { fillSmallTree } from './small-tree';

const BS = 4096;
let work: string;
let pristine: Buffer;
let image: string;

before(async () => {
  work = await makeTempDir('ext4-csum-');
  image = await makeImage(work, 'csum.img', 32, ['-t', 'ext4', '-b', String(BS), '-O', 'metadata_csum']);
  await withMount(image, false, (mnt) => fillSmallTree(mnt, BS));
  pristine = await fsp.readFile(image);
});
after(async () => {
  await removeDir(work);
});

interface Opened {
  fs: Ext4;
  events: Record<string, unknown>[];
}

async function openCorrupted(byteOffset: number): Promise<Opened> {
  const img = Buffer.from(pristine);
  img[byteOffset] ^= 0x5a;
  const events: Record<string, unknown>[] = [];
  const fs = await Ext4.open(new MemorySource(img), { log: (e) => events.push(e) });
  return { fs, events };
}

async function path(fs: Ext4, ...names: string[]): Promise<number> {
  let ino = fs.rootIno;
  for (const n of names) {
    const next = await fs.lookup(ino, Buffer.from(n));
    assert.ok(next !== undefined, `no ${n}`);
    ino = next;
  }
  return ino;
}

/** A checksum the kernel rejects: EBADMSG (EFSBADCRC). */
function isEio(err: unknown): boolean {
  return err instanceof StrataError && err.errno === Errno.EBADMSG;
}

async function othersStillRead(fs: Ext4): Promise<void> {
  assert.equal((await fs.read(await path(fs, 'a'), 0, 100)).toString(), 'alpha');
  assert.ok((await fs.readdir(fs.rootIno)).length > 5);
  assert.equal((await fs.readlink(await path(fs, 'fast'))).toString(), 'a');
}

function imap(p: string): number {
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(image, `imap ${p}`));
  assert.ok(m, `imap ${p}`);
  return Number(m[1]) * BS + parseInt(m[2], 16);
}

describe('metadata_csum mismatches', () => {
  test('the pristine image reads without events', async () => {
    const events: Record<string, unknown>[] = [];
    const fs = await Ext4.open(new MemorySource(pristine), { log: (e) => events.push(e) });
    await othersStillRead(fs);
    assert.equal((await fs.readdir(await path(fs, 'big'))).length, 400);
    assert.deepEqual(events, []);
  });

  test('an inode', async () => {
    const { fs, events } = await openCorrupted(imap('/d/two') + 0x10);
    const d = await path(fs, 'd');
    const two = await path(fs, 'd', 'two');
    await assert.rejects(fs.inode(two), isEio);
    await assert.rejects(fs.read(two, 0, 10), isEio);
    assert.ok(events.some((e) => e.event === 'ext4.checksum' && e.structure === 'inode' && e.ino === two), JSON.stringify(events));
    assert.equal((await fs.read(await path(fs, 'd', 'one'), 0, 10)).toString(), 'one');
    assert.equal((await fs.readdir(d)).length, 3);
    await othersStillRead(fs);
  });

  test('a directory leaf block', async () => {
    const block = Number(debugfs(image, 'bmap /d 0').trim());
    const { fs, events } = await openCorrupted(block * BS + 33);
    const d = await path(fs, 'd');
    // A one-block directory is read by the hashed readdir (is_dx_dir), which fails on the checksum; so does a lookup.
    await assert.rejects(fs.readdir(d), isEio);
    await assert.rejects(fs.lookup(d, Buffer.from('one')), isEio);
    assert.ok(events.some((e) => e.event === 'ext4.checksum' && e.structure === 'directory block' && e.ino === d), JSON.stringify(events));
    await othersStillRead(fs);
  });

  test('an htree index block', async () => {
    const block = Number(debugfs(image, 'bmap /big 0').trim());
    const { fs, events } = await openCorrupted(block * BS + 0x28);
    const big = await path(fs, 'big');
    await assert.rejects(fs.lookup(big, Buffer.from('name-7')), isEio);
    assert.ok(events.some((e) => e.structure === 'directory index' && e.ino === big), JSON.stringify(events));
    await othersStillRead(fs);
  });

  test('an external xattr block', async () => {
    const m = /File ACL: (\d+)/.exec(debugfs(image, 'stat /x'));
    assert.ok(m && Number(m[1]) > 0);
    const { fs, events } = await openCorrupted(Number(m[1]) * BS + 200);
    const x = await path(fs, 'x');
    await assert.rejects(fs.xattrs(x), isEio);
    assert.ok(events.some((e) => e.structure === 'xattr block' && e.ino === x), JSON.stringify(events));
    assert.equal((await fs.read(x, 0, 10)).toString(), 'x');
    await othersStillRead(fs);
  });

  test('an extent tree block', async () => {
    const m = /^\s*0\/\s*1\s+1\/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)/m.exec(debugfs(image, 'ex /frag'));
    assert.ok(m, 'frag has no extent block');
    const { fs, events } = await openCorrupted(Number(m[1]) * BS + 20);
    const frag = await path(fs, 'frag');
    await assert.rejects(fs.read(frag, 0, 4096), isEio);
    assert.ok(events.some((e) => e.structure === 'extent block' && e.ino === frag), JSON.stringify(events));
    await othersStillRead(fs);
  });

  test('the superblock: the filesystem is refused', async () => {
    await assert.rejects(openCorrupted(1024 + 0x78), (e: unknown) => e instanceof StrataError && e.errno === Errno.EIO);
  });
});
