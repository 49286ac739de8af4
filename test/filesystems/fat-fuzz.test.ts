/**
 * Hostile FAT images: real images made by mkfs.fat and mtools, then
 * mutated (boot sector fields, FAT entries, directory entries and
 * long-name slots, random bytes, truncation) with a seeded generator, and
 * walked whole with a bound. Every call must resolve or reject with a
 * StrataError; none may throw anything else, hang, read absurd lengths, or
 * lead a walk into a directory cycle.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { isStrataError } from '@strata/errors';
import type { ByteSource, FsEvent } from '@strata/filesystem';
import { Fat, fatDriver } from '@strata/fat';
import { copyIn, makeFatImage, makeTempDir, mtools, mtoolsSkipReason, patternBytes, type ImageSpec } from '@strata/fat/dist/fixture-image';

const skip = mtoolsSkipReason();
const TIME_BUDGET_MS = 14_000;
const MAX_READ = 4 << 20;
const MAX_DEPTH = 40;

/** An image whose first bytes (`head`, where mutations go) are a private copy and the rest is the clean image's. */
class MemorySource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly head: Buffer,
    private readonly rest: Buffer = head,
    size?: number,
  ) {
    this.size = size ?? rest.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (length > MAX_READ) throw new Error(`read of ${length} bytes: larger than anything this image needs`);
    if (offset < 0 || offset + length > this.size) throw new Error(`read past the end (${offset}+${length})`);
    if (offset + length <= this.head.length) return this.head.subarray(offset, offset + length);
    const out = Buffer.from(this.rest.subarray(offset, offset + length));
    if (offset < this.head.length) this.head.copy(out, 0, offset);
    return out;
  }
}

/** xorshift32: the same mutations on every run for a seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

interface Image {
  name: string;
  data: Buffer;
  fatBits: 12 | 16 | 32;
  fatOffset: number;
  fatBytes: number;
  dataOffset: number;
  /** Offsets of 32-byte directory entries in use (short entries and long-name slots). */
  entries: number[];
}

async function build(work: string, spec: ImageSpec): Promise<Image> {
  const host = await fsp.mkdtemp(path.join(work, 'host-'));
  const put = async (rel: string, size: number, seed: number): Promise<void> => {
    await fsp.mkdir(path.dirname(path.join(host, rel)), { recursive: true });
    await fsp.writeFile(path.join(host, rel), patternBytes(size, seed));
  };
  await put('readme.txt', 10, 1);
  await put('A long name for a file.txt', 3000, 2);
  await put('dir one/sub dir/deeper/leaf with long name.bin', 5000, 3);
  await put('dir one/Ünïcödé.txt', 700, 4);
  for (let i = 0; i < 40; i++) await put(`many/entry ${i} with a long name.dat`, 100 * i, 10 + i);
  await put('UPPER.TXT', 1, 5);
  const image = await makeFatImage(work, `fuzz-${spec.fatBits}.img`, spec);
  await copyIn(image, host);
  mtools('mattrib', image, '+r', '::/readme.txt');
  const data = await fsp.readFile(image);
  const fs = await Fat.open(new MemorySource(data));
  const g = fs.geometry;
  const entries: number[] = [];
  const scan = (from: number, to: number): void => {
    for (let off = from; off + 32 <= to; off += 32) {
      const attr = data[off + 11] ?? 0;
      const first = data[off] ?? 0;
      if (first !== 0 && first !== 0xe5 && (attr === 0x0f || attr === 0x10 || attr === 0x20 || attr === 0x21)) entries.push(off);
    }
  };
  scan(g.rootDirOffset, g.rootDirOffset + g.rootDirEntries * 32);
  scan(g.dataOffset, Math.min(data.length, g.dataOffset + 256 * 1024));
  return { name: `FAT${spec.fatBits}`, data, fatBits: g.fatBits, fatOffset: g.fatOffset, fatBytes: g.fatBytes, dataOffset: g.dataOffset, entries };
}

type Mutation = (img: Buffer, base: Image, r: () => number) => void;

const pick = <T>(items: readonly T[], r: () => number): T => items[Math.floor(r() * items.length)] as T;
const randInt = (r: () => number, n: number): number => Math.floor(r() * n);

const MUTATIONS: Record<string, Mutation> = {
  bootField(img, _b, r) {
    const field = pick([11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 32, 33, 34, 35, 36, 37, 38, 39, 44, 45, 46, 47, 48], r);
    img[field] = pick([0, 1, 0xff, 0x80, randInt(r, 256)], r);
  },
  fatEntry(img, b, r) {
    const count = Math.floor((b.fatBytes * 8) / b.fatBits);
    const n = 2 + randInt(r, Math.min(count - 2, 400));
    const value = pick([0, 1, n, n - 1, n + 1, 2, 0x0ffffff7, 0x0fffffff, 0xfff7, 0xff7, randInt(r, 0x10000000)], r);
    if (b.fatBits === 32) img.writeUInt32LE(value >>> 0, b.fatOffset + n * 4);
    else if (b.fatBits === 16) img.writeUInt16LE(value & 0xffff, b.fatOffset + n * 2);
    else {
      const off = b.fatOffset + n + (n >> 1);
      const v = value & 0xfff;
      if (n & 1) {
        img[off] = ((img[off] ?? 0) & 0x0f) | ((v & 0x0f) << 4);
        img[off + 1] = v >> 4;
      } else {
        img[off] = v & 0xff;
        img[off + 1] = ((img[off + 1] ?? 0) & 0xf0) | (v >> 8);
      }
    }
  },
  dirEntry(img, b, r) {
    if (b.entries.length === 0) return;
    const off = pick(b.entries, r);
    const field = pick([0, 11, 12, 13, 20, 21, 26, 27, 28, 29, 30, 31], r);
    img[off + field] = pick([0, 0x0f, 0x10, 0x40, 0x41, 0xe5, 0x2e, 0xff, randInt(r, 256)], r);
  },
  lfnSlot(img, b, r) {
    const slots = b.entries.filter((o) => img[o + 11] === 0x0f);
    if (slots.length === 0) return;
    const off = pick(slots, r);
    const field = pick([0, 13, 1, 2, 14, 15, 28], r);
    img[off + field] = pick([0, 0x40, 0x54, 0xd8, 0xdc, 0xff, randInt(r, 256)], r);
  },
  randomBytes(img, _b, r) {
    const end = img.length;
    for (let i = 0; i < 1 + randInt(r, 16); i++) img[randInt(r, end)] = randInt(r, 256);
  },
};

interface Outcome {
  calls: number;
  failures: number;
}

/** Walks everything reachable with a bound, checking that each failure is a StrataError. */
async function walkAll(fs: Fat, label: string): Promise<Outcome> {
  const out: Outcome = { calls: 0, failures: 0 };
  const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
    out.calls++;
    try {
      return await fn();
    } catch (err) {
      out.failures++;
      assert.ok(isStrataError(err), `${label}: ${what} threw a non-StrataError: ${String(err)}`);
      return undefined;
    }
  };
  let visited = 0;
  const visit = async (handle: number, depth: number): Promise<void> => {
    assert.ok(depth <= MAX_DEPTH, `${label}: walk deeper than ${MAX_DEPTH}: a directory cycle`);
    if (visited++ > 3000) return;
    const n = await attempt('node', () => fs.node(handle));
    await attempt('xattrs', () => fs.xattrs(handle));
    if (!n) return;
    if (n.mode & 0o040000) {
      const entries = (await attempt('readdir', () => fs.readdir(handle))) ?? [];
      for (const e of entries) {
        await attempt('lookup', () => fs.lookup(handle, e.name));
        await visit(e.handle, depth + 1);
      }
    } else {
      for (let off = 0; off < Math.min(n.size, 512 * 1024); off += 128 * 1024) await attempt('read', () => fs.read(handle, off, 128 * 1024));
      await attempt('read at end', () => fs.read(handle, Math.max(0, n.size - 10), 100));
    }
  };
  await visit(fs.rootHandle, 0);
  await attempt('statfs', () => fs.statfs());
  return out;
}

async function bounded<T>(what: string, work: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

describe('FAT reader on hostile images', { skip }, () => {
  let work: string;
  const images: Image[] = [];
  before(async () => {
    work = await makeTempDir('fat-fuzz-');
    images.push(await build(work, { fatBits: 12, sizeMiB: 1, sectorsPerCluster: 2 }));
    images.push(await build(work, { fatBits: 32, sizeMiB: 34, sectorsPerCluster: 1 }));
  });
  after(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  test('the clean images walk without a failure', async () => {
    for (const img of images) {
      const fs = await Fat.open(new MemorySource(img.data));
      const out = await walkAll(fs, img.name);
      assert.equal(out.failures, 0, img.name);
      assert.ok(out.calls > 100);
    }
  });

  test('hand-made damage stays with the object it touches', async () => {
    const base = images[0];
    assert.ok(base);
    const findEntry = (data: Buffer, raw: string): number => {
      const want = Buffer.from(raw, 'latin1');
      for (let off = 0; off + 32 <= data.length; off += 32) if (data.subarray(off, off + 11).equals(want) && data[off + 11] !== 0x0f) return off;
      throw new Error(`no entry ${raw}`);
    };
    const open = async (data: Buffer): Promise<Fat> => Fat.open(new MemorySource(data));
    const path = async (fs: Fat, ...names: string[]): Promise<number> => {
      let h = fs.rootHandle;
      for (const n of names) {
        const next = await fs.lookup(h, Buffer.from(n));
        assert.ok(next !== undefined, n);
        h = next;
      }
      return h;
    };
    const euclean = (e: unknown): boolean => isStrataError(e) && e.errno === 117;

    // A size larger than the chain: the covered part reads, the rest is EUCLEAN.
    let data = Buffer.from(base.data);
    data.writeUInt32LE(100_000, findEntry(data, 'README  TXT') + 28);
    let fs = await open(data);
    const readme = await path(fs, 'readme.txt');
    assert.equal((await fs.node(readme)).size, 100_000);
    assert.equal((await fs.read(readme, 0, 10)).length, 10);
    await assert.rejects(fs.read(readme, 50_000, 10), euclean);

    // A chain looping back on itself.
    data = Buffer.from(base.data);
    const longEntry = findEntry(data, 'ALONGN~1TXT');
    data.writeUInt32LE(1_000_000, longEntry + 28);
    const start = data.readUInt16LE(longEntry + 26);
    const setFat12 = (n: number, v: number): void => {
      const off = base.fatOffset + n + (n >> 1);
      if (n & 1) {
        data[off] = ((data[off] ?? 0) & 0x0f) | ((v & 0x0f) << 4);
        data[off + 1] = v >> 4;
      } else {
        data[off] = v & 0xff;
        data[off + 1] = ((data[off + 1] ?? 0) & 0xf0) | (v >> 8);
      }
    };
    setFat12(start + 1, start);
    fs = await open(data);
    await assert.rejects(fs.read(await path(fs, 'A long name for a file.txt'), 0, 1 << 20), euclean);
    assert.equal((await fs.read(await path(fs, 'readme.txt'), 0, 100)).length, 10);

    // A subdirectory pointing back at its parent: refused, its siblings still read.
    data = Buffer.from(base.data);
    const dirOne = findEntry(data, 'DIRONE~1   ');
    const sub = findEntry(data, 'SUBDIR~1   ');
    data.writeUInt16LE(data.readUInt16LE(dirOne + 26), sub + 26);
    fs = await open(data);
    const one = await path(fs, 'dir one');
    const loop = await path(fs, 'dir one', 'sub dir');
    await assert.rejects(fs.node(loop), euclean);
    await assert.rejects(fs.readdir(loop), euclean);
    assert.equal((await fs.read(await path(fs, 'dir one', 'Ünïcödé.txt'), 0, 1000)).length, 700);
    assert.equal((await fs.readdir(one)).length, 2);

    // Not FAT, and exFAT.
    await assert.rejects(open(Buffer.alloc(4096)), (e: unknown) => isStrataError(e) && e.errno === 22);
    const ex = Buffer.alloc(4096);
    ex.write('EXFAT   ', 3, 'latin1');
    await assert.rejects(open(ex), (e: unknown) => isStrataError(e) && e.errno === 95 && /exFAT is not supported/.test(e.message));
    assert.equal(await fatDriver.detect(new MemorySource(ex)), undefined);
  });

  test('mutations and truncations: every call resolves or rejects with a StrataError, within a bound', async (t) => {
    const started = Date.now();
    const r = rng(0x5eed);
    const names = Object.keys(MUTATIONS);
    let rounds = 0;
    let opened = 0;
    const internal: FsEvent[] = [];
    while (Date.now() - started < TIME_BUDGET_MS && rounds < 1500) {
      const base = images[rounds % images.length];
      assert.ok(base);
      rounds++;
      const data = Buffer.from(base.data.subarray(0, Math.min(base.data.length, base.dataOffset + 256 * 1024)));
      let size = base.data.length;
      const applied: string[] = [];
      for (let k = 0; k < 1 + randInt(r, 4); k++) {
        const m = pick(names, r);
        MUTATIONS[m]?.(data, base, r);
        applied.push(m);
      }
      if (r() < 0.08) {
        size = randInt(r, size);
        applied.push('truncate');
      }
      const label = `round ${rounds} (${base.name}: ${applied.join(', ')})`;
      const source = new MemorySource(data, base.data, size);
      await bounded(`${label} detect`, fatDriver.detect(source));
      let fs: Fat | undefined;
      try {
        fs = await bounded(`${label} open`, Fat.open(source, { log: (e) => internal.push({ ...e, label }) }));
      } catch (err) {
        assert.ok(isStrataError(err), `${label}: open threw ${String(err)}`);
        continue;
      }
      opened++;
      await bounded(`${label} walk`, walkAll(fs, label), 10_000);
    }
    t.diagnostic(`${rounds} rounds, ${opened} opened`);
    assert.deepEqual(internal, [], 'no unexpected exception was turned into EUCLEAN');
    assert.ok(rounds >= 50, `only ${rounds} rounds ran`);
    assert.ok(opened > rounds / 3, `only ${opened} of ${rounds} mutated images opened`);
  });
});
