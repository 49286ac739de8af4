/**
 * The XFS reader on damaged images: a real small image (filled through the
 * kernel when root, else by mkfs.xfs from a prototype tree) is mutated —
 * random bytes in the metadata the reader touches (superblock, AG headers,
 * inodes, directory, attribute and btree blocks), with and without the
 * structure's CRC fixed up afterwards so the damage gets past it, hostile
 * values in chosen fields, truncation — and the whole tree is walked.
 * Every call must resolve or reject with a StrataError, within a time
 * bound, with bounded memory.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isStrataError } from '@strata/errors';
import type { ByteSource, Filesystem } from '@strata/filesystem';
import { Xfs } from '@strata/xfs';
import { MemorySource, fillTree, hasTool, kernelSkipReason, makeImage, makeTempDir, patternBytes, protoImage, withMount } from '@strata/xfs/dist/fixture-image';
import { xfsCrc } from '@strata/xfs/dist/checksum';
import { changeThenCrash } from '@strata/xfs/dist/fixture-image';
import { MetadataReader } from '@strata/xfs/dist/metadata-reader';
import { parseSuperblock } from '@strata/xfs/dist/superblock';
import { inspectLog, logArea } from '@strata/xfs/dist/log/log-head';
import { readRecords, recordCrc } from '@strata/xfs/dist/log/log-records';

const ITERATIONS = 40;
const MAX_NODES = 500;
const CALL_TIMEOUT_MS = 5000;

/** A tiny deterministic PRNG (mulberry32), so a failing case reproduces from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Records the ranges a walk reads: those are the metadata worth damaging. */
class RecordingSource implements ByteSource {
  readonly ranges: [number, number][] = [];
  constructor(private readonly inner: MemorySource) {}
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, length: number): Promise<Buffer> {
    if (length <= 65536) this.ranges.push([offset, length]);
    return this.inner.read(offset, length);
  }
}

/** A view of the first `size` bytes (a truncated image). */
class TruncatedSource implements ByteSource {
  constructor(
    private readonly inner: MemorySource,
    readonly size: number,
  ) {}
  read(offset: number, length: number): Promise<Buffer> {
    if (offset + length > this.size) return Promise.reject(new Error('read past the end'));
    return this.inner.read(offset, length);
  }
}

async function bounded<T>(what: string, p: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS);
  });
  try {
    return await Promise.race([p, timeout]);
  } catch (err) {
    if (isStrataError(err)) return undefined;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Walks everything reachable, every call bounded; returns how many nodes were read. */
async function walk(reader: Filesystem): Promise<number> {
  const queue = [reader.rootHandle];
  const seen = new Set<number>();
  let nodes = 0;
  while (queue.length > 0 && seen.size < MAX_NODES) {
    const h = queue.shift()!;
    if (seen.has(h)) continue;
    seen.add(h);
    const node = await bounded('node', reader.node(h));
    await bounded('xattrs', reader.xattrs(h));
    if (!node) continue;
    nodes++;
    const type = node.mode & 0o170000;
    if (type === 0o040000) {
      const entries = await bounded('readdir', reader.readdir(h));
      for (const e of entries ?? []) {
        queue.push(e.handle);
        if (queue.length < 50) await bounded('lookup', reader.lookup(h, e.name));
      }
    } else if (type === 0o120000) {
      await bounded('readlink', reader.readlink(h));
    } else if (type === 0o100000) {
      await bounded('read', reader.read(h, 0, 1 << 16));
      await bounded('read', reader.read(h, Math.max(0, node.size - 5000), 1 << 16));
    }
  }
  await bounded('statfs', reader.statfs());
  return nodes;
}

/** Where the CRC of the v5 structure starting at `start` sits (and its length), by its magic. */
function crcOf(img: Buffer, start: number, length: number, inodeSize: number): [number, number] | undefined {
  const m32 = img.readUInt32BE(start);
  const m16 = img.readUInt16BE(start + 8);
  if (m32 === 0x58465342) return [224, 512]; // superblock
  if (m32 === 0x58414746) return [216, 512]; // AGF
  if (m32 === 0x58414749) return [312, 512]; // AGI
  if (m32 === 0x58444233 || m32 === 0x58444433 || m32 === 0x58444633) return [4, length]; // dir data/block/free
  if (m32 === 0x424d4133) return [64, length]; // bmbt
  if (m32 === 0x58534c4d || m32 === 0x5841524d) return [12, length]; // symlink, remote attr
  if (m16 === 0x3ebe || m16 === 0x3bee || m16 === 0x3df1 || m16 === 0x3dff) return [12, length]; // da node, attr/dir leaves
  if (img.readUInt16BE(start) === 0x494e) return [100, inodeSize]; // inode
  return undefined;
}

interface Base {
  image: Buffer;
  ranges: [number, number][];
  inodeSize: number;
  crc: boolean;
  /** Log records not wrapping the log's end: byte offset of the header, header blocks, payload length. */
  records: { at: number; hblks: number; len: number }[];
}

/** Where the records of a dirty log are, so damage inside them can be given a valid record CRC. */
async function logRecords(image: Buffer): Promise<Base['records']> {
  const source = new MemorySource(image);
  const sb = parseSuperblock(image.subarray(0, 65536), image.length);
  const vol = { sb, reader: new MetadataReader(source, sb.dblocks * sb.blockSize, 1 << 20), log: (): void => undefined };
  const state = await inspectLog(vol);
  if (state.clean) return [];
  const log = logArea(vol);
  const records: { block: number; data: Buffer }[] = [];
  await readRecords(log, state.tail, state.head, sb.crc, (r) => records.push(r));
  return records
    .map((r) => ({ at: log.start + r.block * 512, hblks: 1, len: r.data.length, block: r.block, size: log.size }))
    .filter((r) => r.block + 1 + Math.ceil(r.len / 512) <= r.size)
    .map(({ at, hblks, len }) => ({ at, hblks, len }));
}

async function prepare(file: string): Promise<Base> {
  const image = fs.readFileSync(file);
  const rec = new RecordingSource(new MemorySource(image));
  const reader = await Xfs.open(rec);
  const nodes = await walk(reader);
  assert.ok(nodes > 20, `the pristine image has only ${nodes} nodes`);
  const crc = image.readUInt16BE(100) % 16 === 5;
  return { image, ranges: rec.ranges, inodeSize: image.readUInt16BE(104), crc, records: await logRecords(image) };
}

async function fuzz(base: Base, seed: number, iterations = ITERATIONS): Promise<void> {
  const random = rng(seed);
  const { image } = base;
  const pristine = Buffer.from(image);
  const heapLimit = process.memoryUsage().heapUsed + 1024 * 1024 * 1024;
  const internal: Record<string, unknown>[] = [];
  for (let iter = 0; iter < iterations; iter++) {
    const changed: [number, Buffer][] = [];
    const poke = (off: number, bytes: Buffer): void => {
      if (off < 0 || off + bytes.length > image.length) return;
      changed.push([off, Buffer.from(image.subarray(off, off + bytes.length))]);
      bytes.copy(image, off);
    };
    let source: ByteSource = new MemorySource(image);
    const kind = iter % 10;
    if (kind === 9) {
      source = new TruncatedSource(new MemorySource(image), Math.floor(random() * image.length));
    } else if ((kind === 4 || kind === 5) && base.records.length > 0) {
      // Damage inside a log record, its CRC made valid again: replay must cope with hostile log items.
      const r = base.records[Math.floor(random() * base.records.length)];
      const data = r.at + r.hblks * 512;
      for (let k = 0; k < 1 + Math.floor(random() * 4); k++) {
        poke(data + Math.floor(random() * r.len), Buffer.from([kind === 4 ? [0, 0xff, 0x80][Math.floor(random() * 3)] : Math.floor(random() * 256)]));
      }
      const header = image.subarray(r.at, r.at + r.hblks * 512);
      const value = Buffer.alloc(4);
      value.writeUInt32LE(recordCrc(header, 324, r.hblks, image.subarray(data, data + r.len)));
      poke(r.at + 32, value);
    } else {
      const [start, length] = base.ranges[Math.floor(random() * base.ranges.length)];
      const n = 1 + Math.floor(random() * 8);
      for (let k = 0; k < n; k++) {
        const off = start + Math.floor(random() * length);
        const hostile = [0x00, 0xff, 0x7f, 0x80, 0x01][Math.floor(random() * 5)];
        poke(off, Buffer.from([kind < 3 ? hostile : Math.floor(random() * 256)]));
      }
      // Half the time the damage is made to pass the CRC, so the structure checks behind it are reached.
      if (base.crc && kind % 2 === 0) {
        for (let s = start; s < start + length; s += base.inodeSize) {
          const at = crcOf(image, s, length - (s - start), base.inodeSize);
          if (!at) continue;
          const [crcOff, len] = at;
          if (s + len > image.length) continue;
          const value = Buffer.alloc(4);
          value.writeUInt32LE(xfsCrc(image, s, len, crcOff));
          poke(s + crcOff, value);
          if (len !== base.inodeSize) break;
        }
      }
    }
    try {
      const reader = await bounded('open', Xfs.open(source, { log: (e) => internal.push(...(e.event === 'xfs.internal' ? [e] : [])) }));
      if (reader) await walk(reader);
    } catch (err) {
      assert.fail(`seed ${seed} iteration ${iter}: ${err instanceof Error ? err.stack : String(err)}`);
    } finally {
      for (const [off, old] of changed.reverse()) old.copy(image, off);
    }
    assert.ok(process.memoryUsage().heapUsed < heapLimit, `seed ${seed} iteration ${iter}: heap grew past 1 GiB`);
  }
  assert.ok(image.equals(pristine), 'every mutation was undone');
  // An exception the reader did not raise itself is a missing check, even though guarded() turned it into EUCLEAN.
  assert.deepEqual(internal, []);
}

let work: string;
before(() => {
  work = makeTempDir('xfs-fuzz-');
});
after(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('XFS reader on damaged images', { skip: hasTool('mkfs.xfs') ? undefined : 'needs xfsprogs' }, () => {
  test('v5, filled through the kernel (or from a prototype tree without root)', async () => {
    let file: string;
    if (kernelSkipReason() === undefined) {
      file = makeImage(work, 'v5.img', 24, []);
      await withMount(file, 'rw', (mnt) => fillTree(mnt, { bigDir: 300, fragments: 300, manyAttrs: 30 }));
    } else {
      file = protoImage(work, 'v5.img', 24, [], sourceTree(path.join(work, 'src5')));
    }
    await fuzz(await prepare(file), 1);
  });

  test('v5 with a dirty log (replayed in memory)', { skip: kernelSkipReason() }, async () => {
    const file = makeImage(work, 'dirty.img', 64, []);
    await withMount(file, 'rw', (mnt) => fillTree(mnt, { bigDir: 200, fragments: 100, manyAttrs: 20 }));
    await withMount(file, 'rw', (mnt) => changeThenCrash(mnt, 0.2));
    const base = await prepare(file);
    assert.ok(base.records.length > 0, 'the log is dirty');
    // Every open replays the log: fewer rounds.
    await fuzz(base, 3, 25);
  });

  test('v4 (crc=0, ftype=0) from a prototype tree', async () => {
    const file = protoImage(work, 'v4.img', 24, ['-m', 'crc=0', '-n', 'ftype=0'], sourceTree(path.join(work, 'src4')));
    await fuzz(await prepare(file), 2);
  });
});

/** A small tree of files, directories of several forms and symlinks, for mkfs.xfs -p. */
function sourceTree(dir: string): string {
  fs.mkdirSync(path.join(dir, 'big'), { recursive: true });
  for (let i = 0; i < 400; i++) fs.writeFileSync(path.join(dir, 'big', `entry-${i}-${'x'.repeat(i % 50)}`), i % 4 ? '' : String(i));
  for (const size of [0, 10, 5000, 300_000]) fs.writeFileSync(path.join(dir, `f${size}`), patternBytes(size, `fuzz${size}`));
  fs.symlinkSync('f10', path.join(dir, 'short'));
  fs.symlinkSync('l'.repeat(700), path.join(dir, 'long'));
  let deep = dir;
  for (let d = 0; d < 10; d++) {
    deep = path.join(deep, `d${d}`);
    fs.mkdirSync(deep);
  }
  return dir;
}
