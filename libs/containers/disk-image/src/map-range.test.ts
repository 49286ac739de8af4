import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, readFileSync, readSync, closeSync, realpathSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { openImage, type DiskImage, type ImageRun } from './index';
import { prng, qemuImg, qemuIo, run, tempDir } from './fixtures';
import { batOffset, logEntry, setLogGuid } from './vhdx/log-fixture';
import { seSparseExtent } from './vmdk/sesparse-fixture';

let store: string;
let cleanup: () => void;
const at = (name: string): string => path.join(store, name);
const SIZE = 24 * 1024 * 1024;

/** A disk of random bytes in scattered stretches (unaligned ends), zeros between: a wrong file offset cannot read the same. */
function sourceDisk(seed: number): Buffer {
  const rnd = prng(seed);
  const disk = Buffer.alloc(SIZE);
  for (let i = 0; i < 40; i++) {
    const start = Math.floor(rnd() * (SIZE - 1024 * 1024));
    const length = 1 + Math.floor(rnd() * 700 * 1024);
    for (let j = 0; j < length; j++) disk[start + j] = Math.floor(rnd() * 256);
  }
  return disk;
}

before(() => {
  ({ dir: store, cleanup } = tempDir('map-range'));
  store = realpathSync(store);
  writeFileSync(at('src.raw'), sourceDisk(7));
});
after(() => cleanup());

/** What the runs say, read straight from the store files: data by pread, zero as zeros, unmapped through the image. */
async function fromRuns(img: DiskImage, offset: number, runs: readonly ImageRun[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  let pos = offset;
  for (const r of runs) {
    assert.ok(r.length > 0, 'no empty runs');
    if (r.kind === 'data') {
      assert.ok(img.files.includes(r.file), 'a data run names one of the image files');
      const buf = Buffer.alloc(r.length);
      const fd = openSync(r.file.path, 'r');
      try {
        assert.equal(readSync(fd, buf, 0, r.length, r.fileOffset), r.length, `pread of ${r.length} at ${r.fileOffset} of ${r.file.path}`);
      } finally {
        closeSync(fd);
      }
      parts.push(buf);
    } else if (r.kind === 'zero') {
      parts.push(Buffer.alloc(r.length));
    } else {
      parts.push(await img.read(pos, r.length));
    }
    pos += r.length;
  }
  return Buffer.concat(parts);
}

/** Random ranges (and the whole disk) mapped; the runs read back equal read(). Returns the unmapped reasons seen. */
async function checkMap(name: string, seed: number, options: { snapshot?: string } = {}): Promise<Set<string>> {
  const img = await openImage(name, { storeRoot: store, ...options });
  const reasons = new Set<string>();
  try {
    const rnd = prng(seed);
    const ranges: [number, number][] = [[0, img.size]];
    for (let i = 0; i < 60; i++) {
      const offset = Math.floor(rnd() * img.size);
      ranges.push([offset, Math.min(img.size - offset, 1 + Math.floor(rnd() * (rnd() < 0.5 ? 8192 : 3 * 1024 * 1024)))]);
    }
    for (const [offset, length] of ranges) {
      const runs = await img.mapRange(offset, length);
      assert.equal(runs.reduce((n, r) => n + r.length, 0), length, `${name} ${offset}+${length}: runs cover the range`);
      for (const r of runs) if (r.kind === 'unmapped') reasons.add(r.reason);
      const got = await fromRuns(img, offset, runs);
      assert.ok(got.equals(await img.read(offset, length)), `${name} ${offset}+${length}: runs read as read() does`);
    }
    await assert.rejects(img.mapRange(img.size - 1, 2), /past the end/);
  } finally {
    await img.close();
  }
  return reasons;
}

const converted: [string, string, string[]][] = [
  ['raw', 'a.raw', []],
  ['qcow2', 'a.qcow2', ['-o', 'cluster_size=65536']],
  ['qcow2', 'x.qcow2', ['-o', 'extended_l2=on']],
  ['vmdk', 'sparse.vmdk', ['-o', 'subformat=monolithicSparse']],
  ['vmdk', 'flat.vmdk', ['-o', 'subformat=monolithicFlat']],
  ['vmdk', 'split.vmdk', ['-o', 'subformat=twoGbMaxExtentSparse']],
  ['vpc', 'dyn.vhd', ['-o', 'subformat=dynamic']],
  ['vpc', 'fixed.vhd', ['-o', 'subformat=fixed']],
  ['vhdx', 'dyn.vhdx', ['-o', 'subformat=dynamic,block_size=1M']],
  ['vhdx', 'fixed.vhdx', ['-o', 'subformat=fixed']],
  ['vdi', 'dyn.vdi', []],
  ['vdi', 'static.vdi', ['-o', 'static=on']],
];

for (const [format, name, opts] of converted) {
  test(`mapRange of ${name} (${format} ${opts.join(' ')}): data runs read from the files equal read()`, async () => {
    qemuImg('convert', '-q', '-f', 'raw', '-O', format, ...opts, at('src.raw'), at(name));
    const reasons = await checkMap(name, name.length * 31);
    assert.deepEqual([...reasons], [], 'nothing unmapped');
  });
}

test('compressed qcow2 clusters and streamOptimized grains are unmapped, the rest maps', async () => {
  qemuImg('convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', at('src.raw'), at('c.qcow2'));
  qemuIo(at('c.qcow2'), 'write -P 9 1M 200k');
  assert.deepEqual([...(await checkMap('c.qcow2', 3))], ['compressed cluster']);
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', at('src.raw'), at('stream.vmdk'));
  assert.deepEqual([...(await checkMap('stream.vmdk', 4))], ['compressed grain']);
});

test('a qcow2 chain (over a qcow2 and a VMDK) and an internal snapshot map through every layer', async () => {
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', at('src.raw'), at('base.qcow2'));
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', at('mid.qcow2'));
  qemuIo(at('mid.qcow2'), 'write -P 3 70000 5000', 'write -z 4M 128k', 'write -P 4 20M 3M');
  qemuImg('snapshot', '-c', 'before', at('mid.qcow2'));
  qemuIo(at('mid.qcow2'), 'write -P 6 5M 1M');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', '-o', 'extended_l2=on', at('top.qcow2'));
  qemuIo(at('top.qcow2'), 'write -P 5 100000 3000', 'write -z 9M 64k');
  await checkMap('top.qcow2', 5);
  await checkMap('mid.qcow2', 6, { snapshot: 'before' });
  const img = await openImage('top.qcow2', { storeRoot: store });
  try {
    const files = new Set((await img.mapRange(0, img.size)).flatMap((r) => (r.kind === 'data' ? [path.basename(r.file.path)] : [])));
    assert.deepEqual([...files].sort(), ['base.qcow2', 'mid.qcow2', 'top.qcow2'], 'runs reach every file of the chain');
  } finally {
    await img.close();
  }
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', at('src.raw'), at('vbase.vmdk'));
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'vbase.vmdk', '-F', 'vmdk', at('over-vmdk.qcow2'));
  qemuIo(at('over-vmdk.qcow2'), 'write -P 7 3M 100k');
  await checkMap('over-vmdk.qcow2', 8);
  run('qemu-img', ['create', '-q', '-f', 'vmdk', '-b', 'vbase.vmdk', '-F', 'vmdk', at('delta.vmdk')]);
  run('qemu-io', ['-f', 'vmdk', '-c', 'write -P 8 2M 300k', at('delta.vmdk')]);
  await checkMap('delta.vmdk', 9);
});

test('a VHDX with a log to replay: the sectors the log replaced (and a block it added past the file\'s end) are unmapped', async () => {
  const MiB = 1024 * 1024;
  const SECTOR = 4096;
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', at('src.raw'), at('log.vhdx'));
  const b = readFileSync(at('log.vhdx'));
  const header = 64 * 1024;
  const logOffset = Number(b.readBigUInt64LE(header + 72));
  const bat = batOffset(b);
  const block0 = Number(b.readBigUInt64LE(bat) >> 20n) * MiB;
  const newBlock = Math.ceil(b.length / MiB) * MiB;
  const batSector = Buffer.from(b.subarray(bat, bat + SECTOR));
  // Guest block 5 moves to a block the log adds past the end of the file.
  batSector.writeBigUInt64LE((BigInt(newBlock / MiB) << 20n) | 6n, 5 * 8);
  const guid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const entry = logEntry(7n, guid, [
    { kind: 'desc', fileOffset: bat, data: batSector },
    { kind: 'desc', fileOffset: newBlock, data: Buffer.alloc(SECTOR, 0xc3) },
    { kind: 'desc', fileOffset: block0 + 2 * SECTOR, data: Buffer.alloc(SECTOR, 0x5e) },
  ], b.length, newBlock + MiB - SECTOR, 0);
  entry.copy(b, logOffset + 2 * SECTOR);
  setLogGuid(b, guid);
  writeFileSync(at('log.vhdx'), b);
  assert.deepEqual([...(await checkMap('log.vhdx', 12))], ['VHDX log replay']);
  const img = await openImage('log.vhdx', { storeRoot: store });
  try {
    const runs = await img.mapRange(0, 3 * SECTOR);
    assert.deepEqual(runs.map((r) => [r.kind, r.length]), [['data', 2 * SECTOR], ['unmapped', SECTOR]]);
    assert.deepEqual((await img.mapRange(5 * MiB, MiB)).map((r) => r.kind), ['unmapped']);
  } finally {
    await img.close();
  }
});

test('an seSparse delta over a monolithicSparse base maps its grains, zeros and the base', async () => {
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', at('src.raw'), at('se-base.vmdk'));
  const baseCid = /CID=([0-9a-f]+)/.exec(readFileSync(at('se-base.vmdk')).subarray(512, 1536).toString('latin1'))?.[1];
  assert.ok(baseCid);
  writeFileSync(at('se-delta-sesparse.vmdk'), seSparseExtent(SIZE, [[0, 0], [5, 1], [1000, 2], [2047, 3]], [6]));
  writeFileSync(at('se-delta.vmdk'), ['# Disk DescriptorFile', 'version=1', 'CID=fffffffe', `parentCID=${baseCid}`, 'createType="seSparse"', 'parentFileNameHint="se-base.vmdk"', `RW ${SIZE / 512} SESPARSE "se-delta-sesparse.vmdk"`, ''].join('\n'));
  assert.deepEqual([...(await checkMap('se-delta.vmdk', 13))], []);
  const img = await openImage('se-delta.vmdk', { storeRoot: store });
  try {
    const runs = await img.mapRange(4 * 4096, 4 * 4096);
    assert.deepEqual(runs.map((r) => [r.kind, r.length, r.kind === 'data' ? path.basename(r.file.path) : '']), [
      ['data', 4096, 'se-base.vmdk'],
      ['data', 4096, 'se-delta-sesparse.vmdk'],
      ['zero', 4096, ''],
      ['data', 4096, 'se-base.vmdk'],
    ]);
  } finally {
    await img.close();
  }
});

test('fuzz: mapRange of mutated images resolves or rejects with a StrataError, in bounded time', async () => {
  const { StrataError } = await import('@strata/errors');
  const rnd = prng(11);
  const made: [string, string[]][] = [
    ['fz.qcow2', ['-O', 'qcow2']],
    ['fz.vmdk', ['-O', 'vmdk']],
    ['fz.vhdx', ['-O', 'vhdx']],
    ['fz.vhd', ['-O', 'vpc']],
    ['fz.vdi', ['-O', 'vdi']],
    ['fzc.qcow2', ['-c', '-O', 'qcow2']],
  ];
  for (const [name, args] of made) {
    qemuImg('convert', '-q', '-f', 'raw', ...args, at('src.raw'), at(name));
    const original = readFileSync(at(name));
    for (let i = 0; i < 12; i++) {
      const bytes = Buffer.from(original);
      // Hostile bytes where the tables live (the first 1 MiB), and sometimes a truncation.
      for (let k = 0; k < 16; k++) bytes[Math.floor(rnd() * Math.min(bytes.length, 1 << 20))] = Math.floor(rnd() * 256);
      const cut = rnd() < 0.3 ? Math.floor(rnd() * bytes.length) : bytes.length;
      writeFileSync(at(`fuzz-${name}`), bytes.subarray(0, cut));
      const started = Date.now();
      let img: DiskImage;
      try {
        img = await openImage(`fuzz-${name}`, { storeRoot: store });
      } catch (err) {
        assert.ok(err instanceof StrataError, String(err));
        continue;
      }
      try {
        for (let j = 0; j < 8; j++) {
          const offset = Math.floor(rnd() * img.size);
          await img.mapRange(offset, Math.min(img.size - offset, 1 + Math.floor(rnd() * 4 * 1024 * 1024))).catch((err: unknown) => {
            assert.ok(err instanceof StrataError, String(err));
          });
        }
      } finally {
        await img.close();
      }
      assert.ok(Date.now() - started < 10_000, `${name} mutation ${i} took too long`);
    }
  }
});
