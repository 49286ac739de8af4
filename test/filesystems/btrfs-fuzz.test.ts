/**
 * Hostile images for the btrfs reader: a real small image (mkfs.btrfs
 * --rootdir, no mount needed) mutated in tree blocks, superblock fields,
 * chunk items and file extent items, with and without checksums recomputed
 * after the mutation (so the parsers behind the checksum see the damage),
 * and truncated. Every call must resolve or reject with a StrataError within
 * a time bound: no crash, no hang, no other exception.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import path from 'node:path';
import { isStrataError } from '@strata/errors';
import { crc32c, type ByteSource, type Filesystem } from '@strata/filesystem';
import { Btrfs } from '@strata/btrfs';
import { bytes, makeImage, mkfsSkipReason, tempDir } from '@strata/btrfs/dist/test-fixture';

/** The image in memory with 4 KiB pages replaced (a mutation copies only what it touches) and an adjustable size. */
class PatchedSource implements ByteSource {
  private readonly pages = new Map<number, Buffer>();
  size: number;
  constructor(private readonly base: Buffer) {
    this.size = base.length;
  }
  /** A writable copy of the page holding `offset`, and the offset within it. */
  page(offset: number): [Buffer, number] {
    const start = offset - (offset % 4096);
    let p = this.pages.get(start);
    if (!p) {
      p = Buffer.from(this.base.subarray(start, start + 4096));
      this.pages.set(start, p);
    }
    return [p, offset - start];
  }
  set(offset: number, value: number): void {
    const [p, i] = this.page(offset);
    p[i] = value;
  }
  fill(offset: number, length: number, value: number): void {
    for (let i = 0; i < length; i++) this.set(offset + i, value);
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) throw Object.assign(new Error('read past end'), { code: 'EIO' });
    const out = Buffer.from(this.base.subarray(offset, offset + length));
    for (const [start, p] of this.pages) {
      if (start + 4096 <= offset || start >= offset + length) continue;
      const from = Math.max(start, offset);
      const to = Math.min(start + 4096, offset + length);
      p.copy(out, from - offset, from - start, to - start);
    }
    return out;
  }
  /** Recomputes the crc32c of a tree block (or superblock) of `size` bytes at `at` after mutation. */
  fixChecksum(at: number, size: number): void {
    const block = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) {
      const [p] = this.page(at + i);
      p.copy(block, i);
    }
    const sum = ~crc32c(0xffffffff, block, 32, size) >>> 0;
    const b = Buffer.alloc(4);
    b.writeUInt32LE(sum);
    for (let i = 0; i < 4; i++) this.set(at + i, b[i]);
  }
}

/** Records the physical offsets of every nodesize read (tree blocks) of a clean walk. */
class RecordingSource implements ByteSource {
  readonly blocks = new Set<number>();
  constructor(
    private readonly data: Buffer,
    private readonly nodesize: number,
  ) {}
  get size(): number {
    return this.data.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (length === this.nodesize) this.blocks.add(offset);
    return Buffer.from(this.data.subarray(offset, offset + length));
  }
}

const NODESIZE = 4096;
const CALL_LIMIT = 400;

async function walk(fsys: Filesystem): Promise<number> {
  let calls = 0;
  const call = async <T>(p: Promise<T>): Promise<T | undefined> => {
    calls++;
    try {
      return await p;
    } catch (err) {
      if (!isStrataError(err)) throw err;
      return undefined;
    }
  };
  const stack = [fsys.rootHandle];
  while (stack.length && calls < CALL_LIMIT) {
    const h = stack.pop() as number;
    const n = await call(fsys.node(h));
    await call(fsys.xattrs(h));
    if (!n) continue;
    const type = n.mode & 0o170000;
    if (type === 0o040000) {
      const entries = await call(fsys.readdir(h));
      for (const e of entries ?? []) {
        stack.push(e.handle);
        if (stack.length % 7 === 0) await call(fsys.lookup(h, e.name));
      }
    } else if (type === 0o120000) {
      await call(fsys.readlink(h));
    } else if (type === 0o100000) {
      await call(fsys.read(h, 0, Math.min(n.size, 1 << 20)));
      await call(fsys.read(h, Math.max(0, n.size - 5000), 5000));
    }
  }
  if (fsys instanceof Btrfs) {
    await call(fsys.statfs());
    await call(fsys.subvolumes());
    await call(fsys.defaultSubvolumePath());
  }
  return calls;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

/** Opens and walks; anything but a StrataError from open, or any non-StrataError at all, fails the test. */
async function exercise(source: ByteSource, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      let fsys: Btrfs;
      const internal: unknown[] = [];
      try {
        fsys = await Btrfs.open(source, { cacheBytes: 1 << 20, log: (e) => e.event === 'btrfs.internal' && internal.push(e) });
      } catch (err) {
        assert.ok(isStrataError(err), `${what}: open threw ${String(err)}`);
        assert.deepEqual(internal, [], what);
        return;
      }
      await walk(fsys);
      // A rejection made of an unexpected exception (wrapped as EIO) is a parser bug, not a refusal.
      assert.deepEqual(internal, [], what);
    })(),
    5000,
    what,
  );
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

const skip = mkfsSkipReason();
let work: string;
let image: Buffer;
let blocks: number[];
before(async () => {
  if (skip) return;
  work = tempDir('btrfs-fuzz-');
  const src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'd', 'e'), { recursive: true });
  fs.writeFileSync(path.join(src, 'd', 'e', 'small'), 'small');
  fs.writeFileSync(path.join(src, 'random'), bytes(200_000, 3, false));
  fs.writeFileSync(path.join(src, 'text'), bytes(50_000, 4, true));
  for (let i = 0; i < 150; i++) fs.writeFileSync(path.join(src, 'd', `file-${i}`), `${i}`.repeat(i));
  fs.symlinkSync('d/e/small', path.join(src, 'link'));
  const file = makeImage(work, 'fuzz.img', 128, ['-n', String(NODESIZE), '-m', 'dup'], src);
  image = fs.readFileSync(file);
  const rec = new RecordingSource(image, NODESIZE);
  const fsys = await Btrfs.open(rec);
  assert.ok((await walk(fsys)) > 100);
  blocks = [...rec.blocks].sort((a, b) => a - b);
  assert.ok(blocks.length >= 5, `only ${blocks.length} tree blocks seen`);
});
after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('random byte flips in tree blocks, with and without recomputed checksums', { skip }, async () => {
  const r = rng(42);
  for (let round = 0; round < 90; round++) {
    const img = new PatchedSource(image);
    const at = blocks[Math.floor(r() * blocks.length)];
    const flips = 1 + Math.floor(r() * 8);
    for (let i = 0; i < flips; i++) {
      // Mostly the header and item table, where structure lives; sometimes item data.
      const within = r() < 0.6 ? 32 + Math.floor(r() * 600) : 32 + Math.floor(r() * (NODESIZE - 32));
      img.set(at + within, Math.floor(r() * 256));
    }
    if (round % 4 !== 0) img.fixChecksum(at, NODESIZE);
    await exercise(img, `round ${round} block ${at}`);
  }
});

test('hostile superblock fields and sys_chunk_array (checksum recomputed)', { skip }, async () => {
  const r = rng(7);
  // Fields: root, chunk_root, total_bytes, num_devices, sectorsize, nodesize, sys_chunk_array_size, levels, csum_type, incompat.
  const fields: [number, number][] = [[80, 8], [88, 8], [112, 8], [136, 8], [144, 4], [148, 4], [160, 4], [198, 1], [199, 1], [196, 2], [188, 8], [164, 8]];
  for (let round = 0; round < 60; round++) {
    const img = new PatchedSource(image);
    const sb = 0x10000;
    if (round % 2 === 0) {
      const [off, len] = fields[Math.floor(r() * fields.length)];
      for (let i = 0; i < len; i++) img.set(sb + off + i, r() < 0.5 ? 0 : Math.floor(r() * 256));
    } else {
      // Inside the sys_chunk_array: chunk length, type, stripe count, stripe offsets.
      const off = 811 + Math.floor(r() * 97);
      img.set(sb + off, Math.floor(r() * 256));
    }
    img.fixChecksum(sb, 4096);
    await exercise(img, `superblock round ${round}`);
  }
});

test('truncated images', { skip }, async () => {
  const r = rng(99);
  for (let round = 0; round < 40; round++) {
    const size = round < 5 ? [0, 100, 65536, 65536 + 4095, 70000][round] : Math.floor(r() * image.length);
    const img = new PatchedSource(image);
    img.size = size;
    await exercise(img, `truncated to ${size}`);
  }
});

test('every tree block zeroed in turn (one copy or both): damage stays local', { skip }, async () => {
  for (const at of blocks.slice(0, 20)) {
    const img = new PatchedSource(image);
    img.fill(at, NODESIZE, 0);
    await exercise(img, `zeroed block ${at}`);
  }
});
