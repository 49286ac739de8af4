/**
 * Corrupt images: garbage, truncation, hand-made corruptions, and a seeded
 * time-bounded fuzz of the metadata. Every failure must be a StrataError;
 * nothing may crash, hang or ask for a huge buffer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { Errno, StrataError } from '@strata/errors';
import { boundedWalk } from './bounded-walk';
import { Ext4 } from './ext4';
import { debugfs, makeImage, makeTempDir, removeDir, run, withMount } from './fixture-image';
import { MemorySource } from './memory-source';
import { fillSmallTree } from './small-tree';
import type { ByteSource } from './types';

const BOUNDS = { maxDepth: 50, maxEntries: 5000, maxBytesPerFile: 1024 * 1024 };

let work: string;
const images = new Map<string, { path: string; data: Buffer; blockSize: number }>();

async function build(name: string, blockSize: number, mkfs: string[]): Promise<void> {
  const path = await makeImage(work, `${name}.img`, 8, ['-b', String(blockSize), ...mkfs]);
  await withMount(path, false, (mnt) => fillSmallTree(mnt, blockSize));
  images.set(name, { path, data: await fsp.readFile(path), blockSize });
}

before(async () => {
  work = await makeTempDir('ext4-robust-');
  await build('csum', 1024, ['-t', 'ext4']);
  await build('plain', 1024, ['-t', 'ext4', '-O', '^metadata_csum']);
  await build('inline', 1024, ['-t', 'ext4', '-O', 'inline_data,^metadata_csum']);
  await build('ext2', 1024, ['-t', 'ext2']);
  // Without dir_index: big/ (400 names) is a linear directory of many blocks.
  await build('nodx', 1024, ['-t', 'ext4', '-O', '^dir_index']);
});
after(async () => {
  await removeDir(work);
});

function image(name: string): { path: string; data: Buffer; blockSize: number } {
  const img = images.get(name);
  assert.ok(img);
  return img;
}

function errnoOf(err: unknown): number | undefined {
  return err instanceof StrataError ? err.errno : undefined;
}

async function lookupPath(fs: Ext4, ...names: string[]): Promise<number> {
  let ino = fs.rootIno;
  for (const n of names) {
    const next = await fs.lookup(ino, Buffer.from(n));
    assert.ok(next !== undefined, `no ${n}`);
    ino = next;
  }
  return ino;
}

function imapOffset(path: string, p: string, blockSize: number): number {
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(path, `imap ${p}`));
  assert.ok(m);
  return Number(m[1]) * blockSize + parseInt(m[2], 16);
}

describe('refused at open', () => {
  test('garbage where the superblock should be: EINVAL, bad magic', async () => {
    const junk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 2654435761) >>> 24;
    await assert.rejects(Ext4.open(new MemorySource(junk)), (e: unknown) => errnoOf(e) === Errno.EINVAL && /bad magic/.test(String(e)));
    await assert.rejects(Ext4.open(new MemorySource(Buffer.alloc(100))), (e: unknown) => errnoOf(e) === Errno.EINVAL);
  });

  test('a truncated image: EIO naming the truncation', async () => {
    const { data } = image('plain');
    await assert.rejects(Ext4.open(new MemorySource(data.subarray(0, data.length / 2))), (e: unknown) => errnoOf(e) === Errno.EIO && /truncated/.test(String(e)));
  });

  test('unknown and unsupported incompat features: EOPNOTSUPP naming them', async () => {
    const data = Buffer.from(image('plain').data);
    data.writeUInt32LE(data.readUInt32LE(1024 + 0x60) | 0x20000 | 0x800000, 1024 + 0x60);
    await assert.rejects(Ext4.open(new MemorySource(data)), (e: unknown) => errnoOf(e) === Errno.EOPNOTSUPP && /casefold/.test(String(e)) && /0x800000/.test(String(e)));
  });

  test('an inode count that does not match the groups: EIO', async () => {
    const data = Buffer.from(image('plain').data);
    data.writeUInt32LE(data.readUInt32LE(1024) + 1, 1024);
    await assert.rejects(Ext4.open(new MemorySource(data)), (e: unknown) => errnoOf(e) === Errno.EIO && /inode count/.test(String(e)));
  });
});

describe('hand-made corruptions fail only their object', () => {
  test('an extent pointing past the end of the filesystem', async () => {
    const { path, data: pristine, blockSize } = image('plain');
    const data = Buffer.from(pristine);
    // First extent of /b: i_block at 0x28, header 12 bytes, ee_start_lo at +8.
    data.writeUInt32LE(0x7ffffff0, imapOffset(path, '/b', blockSize) + 0x28 + 12 + 8);
    const fs = await Ext4.open(new MemorySource(data));
    const b = await lookupPath(fs, 'b');
    await assert.rejects(fs.read(b, 0, 100), (e: unknown) => errnoOf(e) === Errno.EUCLEAN && /extent 0 .* is invalid/.test(String(e)));
    assert.equal((await fs.read(await lookupPath(fs, 'a'), 0, 10)).toString(), 'alpha');
  });

  test('an extent tree claiming depth 6', async () => {
    const { path, data: pristine, blockSize } = image('plain');
    const data = Buffer.from(pristine);
    data.writeUInt16LE(6, imapOffset(path, '/frag', blockSize) + 0x28 + 6);
    const fs = await Ext4.open(new MemorySource(data));
    await assert.rejects(fs.inode(await lookupPath(fs, 'frag')), (e: unknown) => errnoOf(e) === Errno.EUCLEAN && /depth/.test(String(e)));
  });

  test('a directory entry with rec_len 0', async () => {
    const { path, data: pristine, blockSize } = image('plain');
    const data = Buffer.from(pristine);
    const block = Number(debugfs(path, 'bmap /d 0').trim());
    data.writeUInt16LE(0, block * blockSize + 4);
    const fs = await Ext4.open(new MemorySource(data));
    const d = await lookupPath(fs, 'd');
    // The kernel's readdir skips the rest of the block (here all of it); its lookup fails on the bad entry.
    assert.deepEqual(await fs.readdir(d), []);
    await assert.rejects(fs.lookup(d, Buffer.from('one')), (e: unknown) => errnoOf(e) === Errno.EUCLEAN && /rec_len 0/.test(String(e)));
    assert.ok((await fs.readdir(fs.rootIno)).length > 5);
  });

  test('a directory cycle: each answer is per inode, a depth-bounded walk terminates', async () => {
    const { path } = image('plain');
    const copy = `${path}.cycle`;
    await fsp.copyFile(path, copy);
    run('debugfs', ['-w', '-R', 'link /x1 /x1/x2/x3/loop', copy]);
    const fs = await Ext4.open(new MemorySource(await fsp.readFile(copy)));
    const x1 = await lookupPath(fs, 'x1');
    const x3 = await lookupPath(fs, 'x1', 'x2', 'x3');
    assert.equal(await fs.lookup(x3, Buffer.from('loop')), x1);
    const errors: unknown[] = [];
    const visited = await boundedWalk(fs, { ...BOUNDS, maxDepth: 30 }, (e) => errors.push(e));
    assert.deepEqual(errors, []);
    assert.ok(visited > 30);
  });

  test('bad inode numbers and wrong file types', async () => {
    const fs = await Ext4.open(new MemorySource(image('plain').data));
    await assert.rejects(fs.inode(0), (e: unknown) => errnoOf(e) === Errno.EUCLEAN);
    await assert.rejects(fs.inode(10_000_000), (e: unknown) => errnoOf(e) === Errno.EUCLEAN);
    await assert.rejects(fs.inode(2000), (e: unknown) => errnoOf(e) === Errno.EUCLEAN && /unused/.test(String(e)));
    const a = await lookupPath(fs, 'a');
    await assert.rejects(fs.readdir(a), (e: unknown) => errnoOf(e) === Errno.ENOTDIR);
    await assert.rejects(fs.lookup(a, Buffer.from('x')), (e: unknown) => errnoOf(e) === Errno.ENOTDIR);
    await assert.rejects(fs.read(fs.rootIno, 0, 1), (e: unknown) => errnoOf(e) === Errno.EISDIR);
    await assert.rejects(fs.read(await lookupPath(fs, 'fast'), 0, 1), (e: unknown) => errnoOf(e) === Errno.EINVAL);
    await assert.rejects(fs.readlink(a), (e: unknown) => errnoOf(e) === Errno.EINVAL);
    assert.equal((await fs.read(a, 3, 100)).toString(), 'ha');
    assert.equal((await fs.read(a, 100, 100)).length, 0);
  });
});

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Records which byte ranges a pristine walk reads: that is where the metadata lives. */
class RecordingSource implements ByteSource {
  readonly ranges: [number, number][] = [];
  constructor(private readonly inner: ByteSource) {}
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, length: number): Promise<Buffer> {
    this.ranges.push([offset, length]);
    return this.inner.read(offset, length);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (hang?)`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

describe('fuzz', () => {
  test('random byte flips in the metadata: only StrataErrors, no hang, no huge read', async (t) => {
    const deadline = Date.now() + 10_000;
    const names = ['csum', 'plain', 'inline', 'ext2'];
    const regions = new Map<string, [number, number][]>();
    for (const name of names) {
      const rec = new RecordingSource(new MemorySource(image(name).data));
      const fs = await Ext4.open(rec);
      const errors: unknown[] = [];
      await boundedWalk(fs, BOUNDS, (e) => errors.push(e));
      assert.deepEqual(errors, [], `pristine ${name} walks cleanly`);
      // Small reads are metadata (file data of this tree comes in larger runs, or is inline).
      regions.set(name, rec.ranges.filter(([, len]) => len <= 4 * image(name).blockSize));
    }
    let iterations = 0;
    let failures = 0;
    for (let seed = 1; Date.now() < deadline; seed++) {
      const rand = prng(seed);
      const name = names[seed % names.length];
      const data = Buffer.from(image(name).data);
      const ranges = regions.get(name) ?? [];
      const flips = 1 + Math.floor(rand() * 8);
      for (let i = 0; i < flips; i++) {
        const [off, len] = ranges[Math.floor(rand() * ranges.length)];
        data[off + Math.floor(rand() * len)] ^= 1 + Math.floor(rand() * 255);
      }
      const source = new MemorySource(data, undefined, 16 * 1024 * 1024);
      const internal: Record<string, unknown>[] = [];
      const foreign: unknown[] = [];
      const check = (e: unknown): void => {
        if (!(e instanceof StrataError)) foreign.push(e);
        else failures++;
      };
      await withTimeout(
        (async () => {
          let fs: Ext4;
          try {
            fs = await Ext4.open(source, { log: (e) => e.event === 'ext4.internal' && internal.push(e), cacheBytes: 1024 * 1024 });
          } catch (e) {
            check(e);
            return;
          }
          fs.statfs();
          await boundedWalk(fs, BOUNDS, check);
        })(),
        5000,
        `seed ${seed} (${name})`,
      );
      assert.deepEqual(foreign, [], `seed ${seed} (${name}): a non-StrataError escaped`);
      assert.deepEqual(internal, [], `seed ${seed} (${name}): an unchecked failure was caught only by the safety net`);
      iterations++;
    }
    t.diagnostic(`${iterations} corrupted images walked, ${failures} StrataErrors`);
    assert.ok(iterations > 20, `only ${iterations} iterations`);
    assert.ok(failures > 0, 'the fuzz never produced a failure: it corrupts nothing');
  });
});

/** What an answer was: its value, or the errno and message it failed with. */
async function outcome<T>(p: Promise<T>): Promise<{ ok: T } | { errno: number; message: string }> {
  try {
    return { ok: await p };
  } catch (e) {
    assert.ok(e instanceof StrataError, `not a StrataError: ${String(e)}`);
    return { errno: e.errno, message: e.message };
  }
}

function describeResolved(r: number | undefined | StrataError): string {
  return r instanceof StrataError ? `${r.errno} ${r.message}` : String(r);
}

describe('one pass', () => {
  test('readdirResolved gives what readdir and resolve of the names it lists give, on pristine and damaged directories', async () => {
    let compared = 0;
    let damagedDirs = 0;
    for (const name of ['csum', 'plain', 'inline', 'ext2', 'nodx']) {
      const rec = new RecordingSource(new MemorySource(image(name).data));
      await boundedWalk(await Ext4.open(rec), BOUNDS, () => undefined);
      const ranges = rec.ranges.filter(([, len]) => len <= 4 * image(name).blockSize);
      const { path, blockSize } = image(name);
      // The blocks of big/ (400 names, many blocks): a bad entry in one of them damages the lookups it ends.
      const bigBlocks: number[] = [];
      for (let k = 0; k < 64; k++) {
        const b = Number(debugfs(path, `bmap /big ${k}`).trim());
        if (!(b > 0)) break;
        bigBlocks.push(b);
      }
      assert.ok(bigBlocks.length > 3, `big/ of ${name} has ${bigBlocks.length} blocks`);
      for (let seed = 0; seed < 25; seed++) {
        const rand = prng(1000 + seed);
        const data = Buffer.from(image(name).data);
        // Seed 0 is the pristine image; odd seeds zero a rec_len in a block of big/, the others flip a few metadata bytes.
        if (seed % 2 === 1) data.writeUInt16LE(0, bigBlocks[1 + Math.floor(rand() * (bigBlocks.length - 2))] * blockSize + 4);
        for (let i = 0; seed > 0 && seed % 2 === 0 && i < 1 + Math.floor(rand() * 4); i++) {
          const [off, len] = ranges[Math.floor(rand() * ranges.length)];
          data[off + Math.floor(rand() * len)] ^= 1 + Math.floor(rand() * 255);
        }
        let fs: Ext4;
        try {
          fs = await Ext4.open(new MemorySource(data));
        } catch {
          continue;
        }
        const queue = [fs.rootIno];
        const seen = new Set<number>();
        while (queue.length > 0 && seen.size < 200) {
          const dir = queue.shift() as number;
          if (seen.has(dir)) continue;
          seen.add(dir);
          const both = await outcome(fs.readdirResolved(dir));
          const listed = await outcome(fs.readdir(dir));
          if (!('ok' in listed)) {
            assert.ok(!('ok' in both), `${name} seed ${seed} dir ${dir}: listed alone it fails, together it does not`);
            if ('errno' in both) assert.deepEqual(both, listed);
            continue;
          }
          const resolved = await outcome(fs.resolve(dir, listed.ok.map((e) => e.name)));
          if (!('ok' in resolved)) {
            assert.deepEqual(both, resolved, `${name} seed ${seed} dir ${dir}`);
            continue;
          }
          assert.ok('ok' in both, `${name} seed ${seed} dir ${dir}: ${'message' in both ? both.message : ''}`);
          assert.deepEqual(both.ok.entries, listed.ok, `${name} seed ${seed} dir ${dir}: entries`);
          assert.deepEqual(both.ok.resolved.map(describeResolved), resolved.ok.map(describeResolved), `${name} seed ${seed} dir ${dir}: lookups`);
          if (resolved.ok.some((r) => r instanceof StrataError)) damagedDirs++;
          compared++;
          for (const e of listed.ok) if (e.type === 'dir') queue.push(e.ino);
        }
      }
    }
    assert.ok(compared > 200, `only ${compared} directories compared`);
    assert.ok(damagedDirs > 0, 'no damaged directory was compared');
  });
});

