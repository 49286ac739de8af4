/**
 * The NTFS reader on hostile images: a real volume made by mkntfs and
 * ntfs-3g (B+ tree directory, attribute list, compressed and sparse files,
 * reparse points, ADS) is damaged — boot sector fields, MFT records and
 * index blocks (torn, or damaged and re-protected so that the fixups pass
 * and the parsers behind them see the damage), attribute headers and
 * runlists, attribute lists, random bytes, truncation — and the whole tree
 * is walked with a bounded number of calls. Every call must resolve or
 * reject with a StrataError within a time bound, without an internal error
 * and without reading more than a bounded amount at once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isStrataError } from '@strata/errors';
import type { ByteSource } from '@strata/filesystem';
import { Ntfs } from '@strata/ntfs';
import { attributeOffsets, makeImage, makeTempDir, ntfs3gSkipReason, patchRecord, withNtfs3g } from '@strata/ntfs/dist/fixture-image';
import { fillTree } from '@strata/ntfs/dist/fixture-tree';

/** Reads larger than this would mean the reader trusts a size from disk. */
const MAX_READ = 64 * 1024 * 1024;
const CALLS_PER_IMAGE = 600;
const TIME_PER_IMAGE_MS = 10_000;
/** A longer campaign: NTFS_FUZZ_SECONDS=600 NTFS_FUZZ_SEED=1000 node --test …/ntfs-fuzz.test.js */
const CAMPAIGN_MS = 1000 * Number(process.env.NTFS_FUZZ_SECONDS ?? 10);
/** Images damaged whatever the time: three per mutator. */
const MIN_IMAGES = 3 * 11;
const FIRST_SEED = Number(process.env.NTFS_FUZZ_SEED ?? 1);

class MemorySource implements ByteSource {
  constructor(
    private readonly image: Buffer,
    readonly size: number = image.length,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    if (length > MAX_READ) throw new Error(`read of ${length} bytes: larger than any read this image needs`);
    if (offset < 0 || offset + length > this.size) throw new Error(`read past the end (${offset}+${length} of ${this.size})`);
    const out = Buffer.alloc(length);
    this.image.copy(out, 0, offset, Math.min(offset + length, this.image.length));
    return out;
  }
}

/** A deterministic generator, so a failure names a reproducible seed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

interface Layout {
  records: number[];
  /** Records holding a non-resident attribute (runlists, sizes). */
  nonResident: number[];
  /** Records holding an $ATTRIBUTE_LIST. */
  withList: number[];
  recordSize: number;
  indexBlocks: number[];
  indexSize: number;
}

function layoutOf(img: Buffer): Layout {
  const l: Layout = { records: [], nonResident: [], withList: [], recordSize: 1024, indexBlocks: [], indexSize: 4096 };
  for (let at = 0; at + 1024 <= img.length; at += 512) {
    const magic = img.toString('latin1', at, at + 4);
    // Records in use only: damage to a free record is never read.
    if (magic === 'FILE' && at % 1024 === 0 && img[at + 0x16] & 1) {
      l.records.push(at);
      const copy = Buffer.from(img.subarray(at, at + 1024));
      patchRecord(copy, 0, 1024, (rec) => {
        const attrs = attributeOffsets(rec);
        if (attrs.some((a) => rec[a + 8] === 1)) l.nonResident.push(at);
        if (attrs.some((a) => rec.readUInt32LE(a) === 0x20)) l.withList.push(at);
      });
    }
    if (magic === 'INDX' && at % 4096 === 0) l.indexBlocks.push(at);
  }
  return l;
}

type Mutator = (img: Buffer, r: () => number, l: Layout) => number | undefined;

const pick = <T>(r: () => number, xs: T[]): T => xs[r() % xs.length];
const hostile = (r: () => number): number => pick(r, [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0xffffffff, 0x8000, r() & 0xffff, r()]);

const MUTATORS: [string, Mutator][] = [
  ['boot sector field', (img, r) => {
    const at = pick(r, [0x0b, 0x0c, 0x0d, 0x28, 0x2c, 0x30, 0x34, 0x38, 0x40, 0x44, 0x48, 0x1fe]);
    img.writeUInt32LE(hostile(r) >>> 0, at);
    return undefined;
  }],
  ['torn MFT record', (img, r, l) => {
    // A sector that missed the write: its tail no longer holds the update sequence number.
    const at = pick(r, l.records) + (1 + (r() % (l.recordSize / 512))) * 512 - 2;
    img[at] ^= 1 + (r() % 255);
    return undefined;
  }],
  ['MFT record bytes behind valid fixups', (img, r, l) => {
    patchRecord(img, pick(r, l.records), l.recordSize, (rec) => {
      const inUse = Math.min(rec.length, Math.max(0x40, rec.readUInt32LE(0x18)));
      for (let n = 1 + (r() % 6); n > 0; n--) rec[r() % 2 ? 0x10 + (r() % 0x20) : 0x10 + (r() % (inUse - 0x10))] = r() & 0xff;
    });
    return undefined;
  }],
  ['attribute header field', (img, r, l) => {
    patchRecord(img, pick(r, l.records), l.recordSize, (rec) => {
      const attrs = attributeOffsets(rec);
      if (attrs.length === 0) return;
      const a = pick(r, attrs);
      const field = pick(r, [4, 8, 9, 10, 12, 0x10, 0x14, 0x18, 0x20, 0x22, 0x28, 0x30, 0x38, 0x40]);
      if (field === 8 || field === 9 || field === 0x22) rec[a + field] = hostile(r) & 0xff;
      else if (field < 0x10 || field === 0x14 || field === 0x20) rec.writeUInt16LE(hostile(r) & 0xffff, a + field);
      else rec.writeUInt32LE(hostile(r) >>> 0, a + field + (r() % 2) * 4);
    });
    return undefined;
  }],
  ['huge sizes of a non-resident attribute', (img, r, l) => {
    patchRecord(img, pick(r, l.nonResident), l.recordSize, (rec) => {
      const nonResident = attributeOffsets(rec).filter((a) => rec[a + 8] === 1);
      if (nonResident.length === 0) return;
      const a = pick(r, nonResident);
      const size = BigInt(pick(r, [2 ** 32, 2 ** 40, 2 ** 52, 2 ** 53 + 1, 2 ** 62]));
      for (const f of [0x28, 0x30, 0x38]) rec.writeBigInt64LE(size, a + f);
      if (r() % 2) rec.writeBigInt64LE(size / 4096n, a + 0x18);
    });
    return undefined;
  }],
  ['runlist bytes', (img, r, l) => {
    patchRecord(img, pick(r, l.nonResident), l.recordSize, (rec) => {
      const nonResident = attributeOffsets(rec).filter((a) => rec[a + 8] === 1);
      if (nonResident.length === 0) return;
      const a = pick(r, nonResident);
      const pairs = a + rec.readUInt16LE(a + 0x20);
      const len = rec.readUInt32LE(a + 4);
      if (pairs >= a + len) return;
      for (let n = 1 + (r() % 3); n > 0; n--) rec[pairs + (r() % (a + len - pairs))] = r() & 0xff;
    });
    return undefined;
  }],
  ['attribute list entry', (img, r, l) => {
    if (l.withList.length === 0) return undefined;
    patchRecord(img, pick(r, l.withList), l.recordSize, (rec) => {
      const a = attributeOffsets(rec).find((x) => rec.readUInt32LE(x) === 0x20)!;
      if (rec[a + 8] === 0) {
        const v = a + rec.readUInt16LE(a + 20);
        const n = rec.readUInt32LE(a + 16);
        if (n > 0) rec.writeUInt16LE(hostile(r) & 0xffff, v + ((r() % Math.max(1, n - 2)) & ~1));
      } else {
        rec.writeUInt32LE(hostile(r) >>> 0, a + pick(r, [0x18, 0x30, 0x38]));
      }
    });
    return undefined;
  }],
  ['index block behind valid fixups', (img, r, l) => {
    if (l.indexBlocks.length === 0) return undefined;
    patchRecord(img, pick(r, l.indexBlocks), l.indexSize, (blk) => {
      const field = pick(r, [0x10, 0x18, 0x1c, 0x20, 0x40 + (r() % 4000)]);
      if (field < 0x40) blk.writeUInt32LE(hostile(r) >>> 0, field);
      else blk[field] = r() & 0xff;
    });
    return undefined;
  }],
  ['torn index block', (img, r, l) => {
    if (l.indexBlocks.length === 0) return undefined;
    img[pick(r, l.indexBlocks) + (1 + (r() % (l.indexSize / 512))) * 512 - 2] ^= 0x40;
    return undefined;
  }],
  ['random bytes', (img, r) => {
    for (let n = 1 + (r() % 32); n > 0; n--) img[r() % img.length] = r() & 0xff;
    return undefined;
  }],
  ['truncation', (img, r) => (r() % 2 ? r() % img.length : (r() % (img.length / 4096)) * 4096)],
];

interface Outcome {
  calls: number;
  rejections: number;
}

/** Walks everything reachable within the call budget; every rejection must be a StrataError. */
async function walk(source: ByteSource, log: (e: Record<string, unknown>) => void): Promise<Outcome> {
  const out: Outcome = { calls: 0, rejections: 0 };
  const call = async <T>(what: string, p: () => Promise<T>): Promise<T | undefined> => {
    out.calls++;
    try {
      return await p();
    } catch (err) {
      assert.ok(isStrataError(err), `${what} rejected with a non-StrataError: ${String(err)}`);
      out.rejections++;
      return undefined;
    }
  };
  const reader = await call('open', () => Ntfs.open(source, { log, cacheBytes: 1 << 20 }));
  if (!reader) return out;
  await call('statfs', () => reader.statfs());
  const queue = [reader.rootHandle];
  const seen = new Set<number>();
  while (queue.length > 0 && out.calls < CALLS_PER_IMAGE) {
    const h = queue.shift()!;
    if (seen.has(h)) continue;
    seen.add(h);
    const node = await call('node', () => reader.node(h));
    await call('xattrs', () => reader.xattrs(h));
    if (!node) continue;
    const type = node.mode & 0o170000;
    if (type === 0o120000) await call('readlink', () => reader.readlink(h));
    if (type === 0o100000) {
      await call('read', () => reader.read(h, 0, 256 * 1024));
      await call('read end', () => reader.read(h, Math.max(0, node.size - 5000), 10_000));
    }
    if (type === 0o040000) {
      const entries = await call('readdir', () => reader.readdir(h));
      for (const e of (entries ?? []).slice(0, 200)) {
        queue.push(e.handle);
        if (e.handle % 7 === 0) await call('lookup', () => reader.lookup(h, e.name));
      }
    }
  }
  return out;
}

const skipReason = ntfs3gSkipReason();

describe('hostile NTFS images', { skip: skipReason }, () => {
  let work: string;
  let clean: Buffer;
  before(async () => {
    work = makeTempDir('ntfs-fuzz-');
    const image = makeImage(work, 'base.img', 24, []);
    await withNtfs3g(image, 'rw,compression', (mnt) => fillTree(mnt, { bigDir: 150, fragments: 600, files: 12, depth: 5, compression: true }));
    clean = fs.readFileSync(image);
    fs.rmSync(path.join(work, 'base.img'));
  });
  after(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('the clean image walks without a single rejection', async () => {
    const events: Record<string, unknown>[] = [];
    const o = await walk(new MemorySource(clean), (e) => events.push(e));
    assert.equal(o.rejections, 0);
    assert.ok(o.calls > 500, `only ${o.calls} calls`);
    assert.deepEqual(events, []);
  });

  test('every mutation: each call resolves or rejects with a StrataError, bounded in time and reads', async (t) => {
    const layout = layoutOf(clean);
    assert.ok(layout.records.length > 200 && layout.indexBlocks.length > 2 && layout.withList.length > 0 && layout.nonResident.length > 10, `layout: ${JSON.stringify({ records: layout.records.length, nonResident: layout.nonResident.length, withList: layout.withList.length, indexBlocks: layout.indexBlocks.length })}`);
    let rejections = 0;
    let calls = 0;
    let images = 0;
    const byKind = new Map<string, number>();
    const started = Date.now();
    const lastSeed = FIRST_SEED - 1 + (process.env.NTFS_FUZZ_SECONDS ? Number.MAX_SAFE_INTEGER : 40 * MUTATORS.length);
    for (let seed = FIRST_SEED; seed <= lastSeed && (images < MIN_IMAGES || Date.now() - started < CAMPAIGN_MS); seed++) {
      images++;
      const r = prng(seed * 7919);
      const [kind, mutate] = MUTATORS[seed % MUTATORS.length];
      const img = Buffer.from(clean);
      const size = mutate(img, r, layout) ?? img.length;
      const internal: Record<string, unknown>[] = [];
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        walk(new MemorySource(img, size), (e) => {
          if (e.event === 'ntfs.internal') internal.push(e);
        }),
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), TIME_PER_IMAGE_MS))),
      ]).finally(() => clearTimeout(timer));
      assert.notEqual(outcome, 'timeout', `seed ${seed} (${kind}): the walk did not finish in ${TIME_PER_IMAGE_MS} ms`);
      assert.deepEqual(internal, [], `seed ${seed} (${kind}): an unexpected exception inside the reader`);
      if (outcome !== 'timeout') {
        byKind.set(kind, (byKind.get(kind) ?? 0) + outcome.rejections);
        rejections += outcome.rejections;
        calls += outcome.calls;
      }
    }
    t.diagnostic(`${images} damaged images, ${calls} calls, ${rejections} rejections: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    assert.equal(MIN_IMAGES, 3 * MUTATORS.length);
    // Most damage lands somewhere a walk reads (about 0.6 rejections per image when measured); far fewer means the mutators miss.
    assert.ok(rejections >= images / 4, `the mutations were noticed only ${rejections} times in ${images} images (${calls} calls)`);
  });
});
