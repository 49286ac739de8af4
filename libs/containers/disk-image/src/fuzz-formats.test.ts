import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { StrataError } from '@strata/errors';
import { crc32c } from './crc32c';
import { openImage, readPartitionTable } from './index';
import { prng, qemuImg, run, tempDir } from './fixtures';
import { batOffset, logEntry, setLogGuid } from './vhdx/log-fixture';
import { seSparseExtent } from './vmdk/sesparse-fixture';

/**
 * Hostile VMDK, VHD, VHDX, VDI and qcow2 (snapshots, zstd) images: real
 * images made by qemu-img, their metadata mutated (random bits, hostile
 * 32-bit values, with the checksums recomputed half the time so the damage
 * gets past them), then opened and read whole. Every call must resolve or
 * reject with a StrataError within a bound; no file outside the store is
 * ever opened. Seeded: STRATA_FUZZ_SEED reproduces a run.
 */
const SEED = Number(process.env.STRATA_FUZZ_SEED ?? 0xf0f0);
const ITERATIONS = 1200;
const TIME_BUDGET_MS = 20_000;
const ITERATION_TIMEOUT_MS = 5_000;

let root: string;
let store: string;
let cleanup: () => void;

before(() => {
  ({ dir: root, cleanup } = tempDir('fuzz-formats'));
  root = realpathSync(root);
  store = path.join(root, 'store');
  mkdirSync(store);
  // Something outside the store that a mutated name might reach for.
  writeFileSync(path.join(root, 'outside.vmdk'), '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 8 FLAT "outside-flat.vmdk" 0\n');
});
after(() => cleanup());

type Region = [number, number];

/** One file to mutate (the image or one of its files), with the other files of the image copied pristine. */
interface Target {
  name: string;
  /** All files of the image: name → pristine bytes. */
  files: Map<string, Buffer>;
  /** The file mutated and where its metadata is. */
  victim: string;
  regions: Region[];
  /** Recomputes checksums after a mutation, so damage gets past them. */
  fix?: (b: Buffer) => void;
}

const u32le = (b: Buffer, at: number): number => b.readUInt32LE(at);

function vmdkSparseRegions(b: Buffer): Region[] {
  const regions: Region[] = [[0, 512]];
  const gdSector = Number(b.readBigUInt64LE(56));
  const useFooter = b.readBigUInt64LE(56) === 0xffffffffffffffffn;
  const h = useFooter ? b.subarray(b.length - 1024, b.length - 512) : b;
  const gd = Number(h.readBigUInt64LE(56)) * 512;
  const gtes = h.readUInt32LE(44);
  const capacity = Number(h.readBigUInt64LE(12));
  const grain = Number(h.readBigUInt64LE(20));
  const gdEntries = Math.ceil(capacity / (grain * gtes));
  regions.push([gd, gd + gdEntries * 4]);
  for (let i = 0; i < gdEntries; i++) {
    const gt = u32le(b, gd + i * 4) * 512;
    if (gt > 0 && gt < b.length) {
      regions.push([gt, Math.min(b.length, gt + gtes * 4)]);
      // streamOptimized: the markers in front of the grains the table points at.
      for (let g = 0; g < gtes && useFooter; g += 7) {
        const grainAt = u32le(b, gt + g * 4) * 512;
        if (grainAt > 0 && grainAt + 16 < b.length) regions.push([grainAt, grainAt + 16]);
      }
    }
  }
  if (useFooter) regions.push([b.length - 1536, b.length]);
  if (gdSector === 0) regions.push([512, 1024]);
  return regions;
}

function vhdFix(b: Buffer): void {
  const sum = (from: number, len: number, at: number): void => {
    b.writeUInt32BE(0, from + at);
    let s = 0;
    for (let i = from; i < from + len; i++) s = (s + b[i]) >>> 0;
    b.writeUInt32BE(~s >>> 0, from + at);
  };
  if (b.subarray(0, 8).toString('latin1') === 'conectix') sum(0, 512, 64);
  sum(b.length - 512, 512, 64);
  if (b.subarray(512, 520).toString('latin1') === 'cxsparse') sum(512, 1024, 36);
}

function vhdRegions(b: Buffer): Region[] {
  const regions: Region[] = [[b.length - 512, b.length]];
  if (b.subarray(0, 8).toString('latin1') !== 'conectix') return regions;
  regions.push([0, 1536]);
  const bat = Number(b.readBigUInt64BE(512 + 16));
  const entries = b.readUInt32BE(512 + 28);
  regions.push([bat, bat + entries * 4]);
  for (let i = 0; i < entries; i++) {
    const s = b.readUInt32BE(bat + i * 4);
    if (s !== 0xffffffff && s * 512 < b.length) regions.push([s * 512, s * 512 + 512]);
  }
  return regions;
}

function vhdxFix(b: Buffer): void {
  for (const [at, len] of [[64 * 1024, 4096], [128 * 1024, 4096], [192 * 1024, 65536], [256 * 1024, 65536]]) {
    const part = b.subarray(at, at + len);
    part.writeUInt32LE(0, 4);
    part.writeUInt32LE(crc32c(part), 4);
  }
}

function vhdxRegions(b: Buffer): Region[] {
  const regions: Region[] = [[0, 8], [64 * 1024, 64 * 1024 + 128], [128 * 1024, 128 * 1024 + 128], [192 * 1024, 192 * 1024 + 80], [256 * 1024, 256 * 1024 + 80]];
  const t = 192 * 1024;
  for (let i = 0; i < Math.min(8, u32le(b, t + 8)); i++) {
    const off = Number(b.readBigUInt64LE(t + 16 + i * 32 + 16));
    if (off < b.length) regions.push([off, Math.min(b.length, off + 4096)]);
    // The metadata items follow the 64 KiB table.
    if (off + 65536 < b.length) regions.push([off + 65536, Math.min(b.length, off + 65536 + 256)]);
  }
  return regions;
}

function vdiRegions(b: Buffer): Region[] {
  const bmap = u32le(b, 340);
  const blocks = u32le(b, 384);
  return [[0, 512], [bmap, Math.min(b.length, bmap + blocks * 4)]];
}

function qcow2Regions(b: Buffer): Region[] {
  const clusterSize = 2 ** b.readUInt32BE(20);
  const regions: Region[] = [[0, 512]];
  const l1s: [number, number][] = [[Number(b.readBigUInt64BE(40)), b.readUInt32BE(36)]];
  const snapshots = Number(b.readBigUInt64BE(64));
  if (snapshots > 0) {
    regions.push([snapshots, snapshots + 200]);
    let at = snapshots;
    for (let i = 0; i < b.readUInt32BE(60); i++) {
      l1s.push([Number(b.readBigUInt64BE(at)), b.readUInt32BE(at + 8)]);
      const end = at + 40 + b.readUInt32BE(at + 36) + b.readUInt16BE(at + 12) + b.readUInt16BE(at + 14);
      at = end + ((8 - (end % 8)) % 8);
    }
  }
  for (const [l1, size] of l1s) {
    regions.push([l1, l1 + size * 8]);
    for (let i = 0; i < size; i++) {
      const l2 = Number(b.readBigUInt64BE(l1 + i * 8) & 0x00fffffffffffe00n);
      if (l2 !== 0 && l2 < b.length) regions.push([l2, l2 + clusterSize]);
    }
  }
  return regions;
}

const HOSTILE = [0, 1, 0xffffffff, 0x80000000, 0x7fffffff, 0xfffffffe, 0x200, 0x10000];

function mutate(target: Target, rnd: () => number): Buffer {
  const copy = Buffer.from(target.files.get(target.victim) ?? Buffer.alloc(0));
  const changes = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < changes; i++) {
    const [start, end] = target.regions[Math.floor(rnd() * target.regions.length)];
    const o = start + Math.floor(rnd() * Math.max(1, end - start));
    if (o >= copy.length) continue;
    const r = rnd();
    if (r < 0.35 && o - (o % 4) + 4 <= copy.length) {
      const v = HOSTILE[Math.floor(rnd() * HOSTILE.length)];
      const aligned = o - (o % 4);
      if (rnd() < 0.5) copy.writeUInt32LE(v, aligned);
      else copy.writeUInt32BE(v, aligned);
    } else if (r < 0.7) {
      copy[o] ^= 1 << Math.floor(rnd() * 8);
    } else {
      copy[o] = Math.floor(rnd() * 256);
    }
  }
  if (target.fix && rnd() < 0.5) target.fix(copy);
  // Now and then a truncated file.
  if (rnd() < 0.05) return copy.subarray(0, Math.floor(rnd() * copy.length));
  return copy;
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ITERATION_TIMEOUT_MS} ms (hang?)`)), ITERATION_TIMEOUT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

describe('fuzz every reader', () => {
  test(`corrupt VMDK, VHD, VHDX, VDI and qcow2 metadata (seed ${SEED})`, async (t) => {
    const make = path.join(root, 'make');
    mkdirSync(make);
    const raw = path.join(make, 'src.raw');
    const data = Buffer.alloc(3 * 1024 * 1024);
    const rndData = prng(SEED ^ 0x55);
    for (let o = 0; o < data.length; o += 4096) if (rndData() < 0.4) data.fill(Math.floor(rndData() * 255) + 1, o, o + 4096);
    writeFileSync(raw, data);
    const targets: Target[] = [];
    const add = (name: string, files: string[], victim: string, regions: (b: Buffer) => Region[], fix?: (b: Buffer) => void): void => {
      const map = new Map(files.map((f) => [f, readFileSync(path.join(make, f))]));
      const bytes = map.get(victim);
      assert.ok(bytes, victim);
      targets.push({ name, files: map, victim, regions: regions(bytes), fix });
    };
    const convert = (fmt: string, opts: string[], out: string): void => {
      qemuImg('convert', '-q', '-f', 'raw', '-O', fmt, ...opts, raw, path.join(make, out));
    };
    convert('vmdk', ['-o', 'subformat=monolithicSparse'], 'mono.vmdk');
    add('monolithicSparse', ['mono.vmdk'], 'mono.vmdk', vmdkSparseRegions);
    convert('vmdk', ['-o', 'subformat=streamOptimized'], 'stream.vmdk');
    add('streamOptimized', ['stream.vmdk'], 'stream.vmdk', vmdkSparseRegions);
    convert('vmdk', ['-o', 'subformat=twoGbMaxExtentSparse'], 'two.vmdk');
    add('twoGb descriptor', ['two.vmdk', 'two-s001.vmdk'], 'two.vmdk', (b) => [[0, b.length]]);
    add('twoGb extent', ['two.vmdk', 'two-s001.vmdk'], 'two-s001.vmdk', vmdkSparseRegions);
    convert('vmdk', ['-o', 'subformat=monolithicFlat'], 'flat.vmdk');
    add('monolithicFlat descriptor', ['flat.vmdk', 'flat-flat.vmdk'], 'flat.vmdk', (b) => [[0, b.length]]);
    qemuImg('create', '-q', '-f', 'vmdk', '-b', 'mono.vmdk', '-F', 'vmdk', path.join(make, 'delta.vmdk'));
    run('qemu-io', ['-f', 'vmdk', '-c', 'write -P 0x42 64k 200k', path.join(make, 'delta.vmdk')]);
    add('VMDK delta', ['mono.vmdk', 'delta.vmdk'], 'delta.vmdk', (b) => [...vmdkSparseRegions(b), [512, 2048]]);
    writeFileSync(path.join(make, 'se.vmdk'), seSparseExtent(4 * 1024 * 1024, [[0, 0], [3, 1], [700, 2], [1023, 3]], [4]));
    add('seSparse', ['se.vmdk'], 'se.vmdk', () => [[0, 1024], [8 * 512, 9 * 512], [16 * 512, 16 * 512 + 1024 * 8]]);
    convert('vpc', ['-o', 'subformat=dynamic'], 'dyn.vhd');
    add('VHD dynamic', ['dyn.vhd'], 'dyn.vhd', vhdRegions, vhdFix);
    convert('vpc', ['-o', 'subformat=fixed'], 'fixed.vhd');
    add('VHD fixed', ['fixed.vhd'], 'fixed.vhd', vhdRegions, vhdFix);
    convert('vhdx', ['-o', 'subformat=dynamic,block_size=1M'], 'dyn.vhdx');
    add('VHDX dynamic', ['dyn.vhdx'], 'dyn.vhdx', vhdxRegions, vhdxFix);
    // A VHDX closed with two entries in its log: the BAT and a new block, then a rewrite of it.
    {
      const b = readFileSync(path.join(make, 'dyn.vhdx'));
      const logOffset = Number(b.readBigUInt64LE(64 * 1024 + 72));
      const bat = batOffset(b);
      const newBlock = Math.ceil(b.length / (1024 * 1024)) * 1024 * 1024;
      const batSector = Buffer.from(b.subarray(bat, bat + 4096));
      batSector.writeBigUInt64LE((BigInt(newBlock / (1024 * 1024)) << 20n) | 6n, 8);
      const guid = Buffer.alloc(16, 0x77);
      const e1 = logEntry(7n, guid, [{ kind: 'desc', fileOffset: bat, data: batSector }, { kind: 'desc', fileOffset: newBlock, data: Buffer.alloc(4096, 9) }, { kind: 'zero', fileOffset: newBlock + 8192, zeroLength: 8192 }], b.length, newBlock + 4096, 0);
      const e2 = logEntry(8n, guid, [{ kind: 'desc', fileOffset: newBlock + 4096, data: Buffer.alloc(4096, 10) }], b.length, newBlock + 8192, 0);
      e1.copy(b, logOffset + 4096);
      e2.copy(b, logOffset + 4096 + e1.length);
      setLogGuid(b, guid);
      writeFileSync(path.join(make, 'log.vhdx'), b);
      const entries: Region[] = [[logOffset + 4096, logOffset + 4096 + e1.length], [logOffset + 4096 + e1.length, logOffset + 4096 + e1.length + e2.length]];
      add('VHDX log', ['log.vhdx'], 'log.vhdx', () => [...entries.map(([s0]) => [s0, s0 + 200] as Region), [64 * 1024 + 48, 64 * 1024 + 80]], (m) => {
        vhdxFix(m);
        for (const [s0, e0] of entries) {
          const part = m.subarray(s0, e0);
          part.writeUInt32LE(0, 4);
          part.writeUInt32LE(crc32c(part), 4);
        }
      });
    }
    convert('vdi', [], 'dyn.vdi');
    add('VDI', ['dyn.vdi'], 'dyn.vdi', vdiRegions);
    convert('qcow2', ['-c', '-o', 'compression_type=zstd,cluster_size=4k'], 'zstd.qcow2');
    add('qcow2 zstd', ['zstd.qcow2'], 'zstd.qcow2', qcow2Regions);
    convert('qcow2', ['-o', 'cluster_size=4k'], 'snap.qcow2');
    qemuImg('snapshot', '-c', 'one', path.join(make, 'snap.qcow2'));
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x43 0 64k', path.join(make, 'snap.qcow2')]);
    qemuImg('snapshot', '-c', 'two', path.join(make, 'snap.qcow2'));
    add('qcow2 snapshots', ['snap.qcow2'], 'snap.qcow2', qcow2Regions);

    const rnd = prng(SEED);
    const outcomes = { ok: 0, refused: 0 };
    const perTarget = new Map<string, { ok: number; refused: number }>();
    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    const deadline = Date.now() + TIME_BUDGET_MS;
    let i = 0;
    for (; i < ITERATIONS && Date.now() < deadline; i++) {
      const target = targets[i % targets.length];
      const dir = path.join(store, `i${i}`);
      mkdirSync(dir);
      for (const [name, bytes] of target.files) writeFileSync(path.join(dir, name), name === target.victim ? mutate(target, rnd) : bytes);
      const top = [...target.files.keys()].find((f) => f === 'delta.vmdk') ?? [...target.files.keys()][0];
      const snapshot = target.name === 'qcow2 snapshots' && rnd() < 0.5 ? (rnd() < 0.5 ? 'one' : '2') : undefined;
      const offsets = Array.from({ length: 4 }, () => rnd());
      const what = `iteration ${i} (${target.name}, seed ${SEED})`;
      let outcome: 'ok' | 'refused' = 'ok';
      try {
        await withTimeout(
          (async () => {
            const img = await openImage(`i${i}/${top}`, { storeRoot: store, metadataCacheBytes: 256 * 1024, ...(snapshot ? { snapshot } : {}) });
            try {
              for (const f of img.files) assert.ok(f.path.startsWith(store + path.sep), `${what}: opened ${f.path}, outside the store`);
              const settle = async <T>(p: Promise<T>): Promise<T | undefined> =>
                p.catch((err: unknown) => {
                  if (err instanceof StrataError) return undefined;
                  throw err;
                });
              if (img.size <= 16 * 1024 * 1024) {
                const all = await settle(img.read(0, img.size));
                if (all) assert.equal(all.length, img.size);
              }
              await Promise.all(
                offsets.map(async (f) => {
                  const offset = Math.floor(f * img.size);
                  const length = Math.min(img.size - offset, 300 * 1024);
                  const got = await settle(img.read(offset, length));
                  if (got) assert.equal(got.length, length);
                }),
              );
              const own = await settle(img.ownRanges());
              if (own) for (const r of own) assert.ok(r.offset >= 0 && r.length > 0 && r.offset + r.length <= img.size, `${what}: own range inside the disk`);
              await settle(readPartitionTable(img));
            } finally {
              await img.close();
            }
          })(),
          what,
        );
      } catch (err) {
        if (!(err instanceof StrataError)) assert.fail(`${what}: ${err instanceof Error ? err.stack : String(err)}`);
        outcome = 'refused';
      }
      outcomes[outcome]++;
      const counts = perTarget.get(target.name) ?? { ok: 0, refused: 0 };
      counts[outcome]++;
      perTarget.set(target.name, counts);
      rmSync(dir, { recursive: true, force: true });
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }
    t.diagnostic(`${i} iterations: ${outcomes.ok} read, ${outcomes.refused} refused; ${[...perTarget].map(([n, c]) => `${n} ${c.ok}/${c.refused}`).join(', ')}; peak RSS growth ${Math.round((peakRss - rssBefore) / 1048576)} MiB`);
    assert.ok(i >= targets.length * 5, `only ${i} iterations ran`);
    assert.ok(outcomes.refused > 0 && outcomes.ok > 0, 'the fuzzer exercised both outcomes');
    assert.ok(peakRss - rssBefore < 500 * 1024 * 1024, 'memory stays bounded');
  });
});
