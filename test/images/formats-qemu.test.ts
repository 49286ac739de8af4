import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectFormat, openImage, readPartitionTable, sliceSource, type DiskImage, type GuestRange, type ImageFormat } from '@strata/disk-image';
import { isStrataError } from '@strata/errors';
import { ext4Driver } from '@strata/ext4';
import { readFilesystemTree } from '../support/filesystem-tree';
import { ALL_FIELDS, compareTrees, readKernelTree } from '../support/tree-snapshot';
import { withLoopMount } from './disk-fixture';

/**
 * Every disk a hypervisor holds, read by @strata/disk-image and compared byte
 * for byte with what qemu reads from the same file (`qemu-img convert -O
 * raw`): VMDK (each subformat), VHDX, VHD, VDI, zstd-compressed qcow2,
 * qcow2 internal snapshots, and chains across formats with their own ranges
 * checked against `qemu-img map`. Needs qemu-img, qemu-io, sfdisk, mke2fs;
 * skipped without them. No root.
 */

const TOOLS = ['qemu-img', 'qemu-io', 'sfdisk', 'mke2fs'];
const missing = TOOLS.filter((t) => {
  try {
    execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
});
const skip = missing.length > 0 ? `missing ${missing.join(', ')}` : false;

const MiB = 1024 * 1024;
/** qemu's driver name for each format. */
const QEMU_FORMAT: Record<ImageFormat, string> = { raw: 'raw', qcow2: 'qcow2', vmdk: 'vmdk', vhdx: 'vhdx', vhd: 'vpc', vdi: 'vdi' };

let work: string;
let store: string;
/** The guest disk every format holds: a GPT, an ext4 partition with files, random data at scattered offsets, holes. */
let sourceRaw: string;

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
}

function qemuIo(format: string, file: string, ...commands: string[]): void {
  const out = run('qemu-io', ['-f', format, ...commands.flatMap((c) => ['-c', c]), file]);
  assert.doesNotMatch(out, /error|failed/i, `qemu-io ${commands.join('; ')}: ${out}`);
}

const at = (name: string): string => path.join(store, name);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** What qemu reads: `qemu-img convert -f FMT -O raw` (the format named, as probing takes a fixed VHD for raw). */
function qemuBytes(name: string, format: ImageFormat, extra: string[] = []): Buffer {
  const out = path.join(work, 'truth.raw');
  run('qemu-img', ['convert', '-f', QEMU_FORMAT[format], ...extra, '-O', 'raw', at(name), out]);
  const bytes = fs.readFileSync(out);
  fs.rmSync(out);
  return bytes;
}

/** Seeded ranges that straddle 64 KiB boundaries (grain, cluster and block edges), read concurrently. */
async function assertSameBytes(img: DiskImage, truth: Buffer, what: string): Promise<void> {
  assert.equal(img.size, truth.length, `${what}: virtual size`);
  assert.equal(sha(await img.read(0, img.size)), sha(truth), `${what}: whole-disk sha256`);
  let seed = 0x1234;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const ranges = Array.from({ length: 24 }, () => {
    const boundary = Math.max(1, Math.floor((rnd() * truth.length) / 65536)) * 65536;
    const start = Math.max(0, Math.min(truth.length - 1, boundary - 1 - Math.floor(rnd() * 4096)));
    return [start, Math.min(truth.length - start, 1 + Math.floor(rnd() * 200_000))] as const;
  });
  const got = await Promise.all(ranges.map(([s, l]) => img.read(s, l)));
  ranges.forEach(([s, l], i) => assert.ok(got[i].equals(truth.subarray(s, s + l)), `${what}: range ${s}+${l}`));
}

/** The ranges qemu says the top file holds itself: `qemu-img map` extents of depth 0 that are present. */
function qemuOwnRanges(name: string, format: ImageFormat): GuestRange[] {
  const map = JSON.parse(run('qemu-img', ['map', '-f', QEMU_FORMAT[format], '--output=json', at(name)])) as { start: number; length: number; depth: number; present: boolean }[];
  const out: GuestRange[] = [];
  for (const e of map) {
    if (e.depth !== 0 || !e.present) continue;
    const last = out[out.length - 1];
    if (last && last.offset + last.length === e.start) last.length += e.length;
    else out.push({ offset: e.start, length: e.length });
  }
  return out;
}

/** Every byte qemu says the top holds lies in our own ranges, and ours add nothing beyond the file's granularity. */
function assertCovers(ours: readonly GuestRange[], theirs: readonly GuestRange[], granule: number, what: string): void {
  const inside = (o: number): boolean => ours.some((r) => o >= r.offset && o < r.offset + r.length);
  for (const r of theirs) {
    for (let o = r.offset; o < r.offset + r.length; o += 4096) assert.ok(inside(o), `${what}: qemu's own range ${r.offset}+${r.length} not in ours at ${o}`);
  }
  const theirsInside = (o: number): boolean => theirs.some((r) => o + granule > r.offset && o < r.offset + r.length);
  for (const r of ours) {
    for (let o = r.offset; o < r.offset + r.length; o += granule) assert.ok(theirsInside(Math.floor(o / granule) * granule), `${what}: our own range ${r.offset}+${r.length} holds nothing qemu sees at ${o}`);
  }
}

function assertZeroOutside(own: readonly GuestRange[], truth: Buffer, what: string): void {
  let pos = 0;
  for (const r of [...own, { offset: truth.length, length: 0 }]) {
    assert.ok(r.offset >= pos, `${what}: own ranges sorted and disjoint`);
    assert.ok(truth.subarray(pos, r.offset).every((b) => b === 0), `${what}: data between ${pos} and ${r.offset} outside the own ranges`);
    pos = r.offset + r.length;
  }
}

async function open(name: string, format?: ImageFormat, snapshot?: string): Promise<DiskImage> {
  return openImage(name, { storeRoot: store, ...(format ? { format } : {}), ...(snapshot === undefined ? {} : { snapshot }) });
}

async function rejects(p: Promise<unknown>, errno: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isStrataError(err), `expected a StrataError, got ${String(err)}`);
    assert.equal(err.errnoName, errno, err.message);
    assert.match(err.message, message);
    return true;
  });
}

before(() => {
  if (skip) return;
  work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-formats-qemu-')));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  sourceRaw = at('source.raw');
  fs.writeFileSync(sourceRaw, '');
  fs.truncateSync(sourceRaw, 12 * MiB);
  run('sfdisk', ['-q', sourceRaw], 'label: gpt\nstart=2048, size=8MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n');
  const tree = path.join(work, 'tree');
  fs.mkdirSync(path.join(tree, 'etc'), { recursive: true });
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(tree, 'etc', `f${i}`), `file ${i}\n`.repeat(i * 300 + 1));
  run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', '-d', tree, '-E', `offset=${MiB}`, sourceRaw, '8M']);
  // Random data at scattered, unaligned offsets past the partition, and holes between them.
  const fd = fs.openSync(sourceRaw, 'r+');
  let seed = 7;
  for (const [offset, length] of [[9 * MiB + 12345, 70_000], [10 * MiB + 65536 - 100, 200], [11 * MiB + 512, 300_000]]) {
    const b = Buffer.alloc(length);
    for (let i = 0; i < length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      b[i] = seed >>> 24;
    }
    fs.writeSync(fd, b, 0, length, offset);
  }
  fs.closeSync(fd);
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const CASES: { name: string; format: ImageFormat; qemu: string[]; subformat: string }[] = [
  { name: 'vm/mono-sparse.vmdk', format: 'vmdk', qemu: ['-o', 'subformat=monolithicSparse'], subformat: 'monolithicSparse' },
  { name: 'vm/two-sparse.vmdk', format: 'vmdk', qemu: ['-o', 'subformat=twoGbMaxExtentSparse'], subformat: 'twoGbMaxExtentSparse' },
  { name: 'vm/stream.vmdk', format: 'vmdk', qemu: ['-o', 'subformat=streamOptimized'], subformat: 'streamOptimized' },
  { name: 'vm/mono-flat.vmdk', format: 'vmdk', qemu: ['-o', 'subformat=monolithicFlat'], subformat: 'monolithicFlat' },
  { name: 'vm/two-flat.vmdk', format: 'vmdk', qemu: ['-o', 'subformat=twoGbMaxExtentFlat'], subformat: 'twoGbMaxExtentFlat' },
  { name: 'vm/dynamic.vhdx', format: 'vhdx', qemu: ['-o', 'subformat=dynamic,block_size=1M'], subformat: 'dynamic' },
  { name: 'vm/fixed.vhdx', format: 'vhdx', qemu: ['-o', 'subformat=fixed'], subformat: 'fixed' },
  { name: 'vm/dynamic.vhd', format: 'vhd', qemu: ['-o', 'subformat=dynamic'], subformat: 'dynamic' },
  { name: 'vm/fixed.vhd', format: 'vhd', qemu: ['-o', 'subformat=fixed'], subformat: 'fixed' },
  { name: 'vm/dynamic.vdi', format: 'vdi', qemu: ['-o', 'static=off'], subformat: 'dynamic' },
  { name: 'vm/static.vdi', format: 'vdi', qemu: ['-o', 'static=on'], subformat: 'static' },
  { name: 'vm/zstd.qcow2', format: 'qcow2', qemu: ['-c', '-o', 'compression_type=zstd,cluster_size=16k'], subformat: 'v3' },
];

describe('each format and subformat, byte for byte with qemu-img convert', { skip }, () => {
  for (const c of CASES) {
    test(`${c.format} ${c.subformat}${c.format === 'qcow2' ? ' (zstd-compressed clusters)' : ''}`, async () => {
      run('qemu-img', ['convert', '-f', 'raw', '-O', QEMU_FORMAT[c.format], ...c.qemu, sourceRaw, at(c.name)]);
      const detected = await detectFormat(c.name, { storeRoot: store });
      assert.deepEqual(detected.format, c.format);
      const img = await open(c.name);
      try {
        assert.equal(img.format, c.format);
        assert.equal(img.subformat, c.subformat);
        await assertSameBytes(img, qemuBytes(c.name, c.format), c.name);
        const table = await readPartitionTable(img);
        assert.equal(table.scheme, 'gpt');
        assert.deepEqual(table.partitions.map((p) => [p.number, p.start, p.size]), [[1, MiB, 8 * MiB]]);
        // Without a parent, qemu calls every block present; what matters is that no byte outside our own ranges holds data.
        const own = await img.ownRanges();
        if (own) assertZeroOutside(own, qemuBytes(c.name, c.format), c.name);
        assert.ok(img.files.every((f) => f.path.startsWith(store)));
      } finally {
        await img.close();
      }
    });
  }

  test('a wrong kind is refused naming the format found', async () => {
    await rejects(open('vm/mono-sparse.vmdk', 'qcow2'), 'EINVAL', /vm\/mono-sparse\.vmdk is a VMDK image \(monolithicSparse\): use vmdk: or image:/);
    await rejects(open('vm/dynamic.vhdx', 'raw'), 'EINVAL', /vm\/dynamic\.vhdx is a VHDX image: use vhdx: or image:/);
    await rejects(open('vm/fixed.vhd', 'vmdk'), 'EINVAL', /is a VHD image \(fixed\): use vhd: or image:/);
    await rejects(open('vm/static.vdi', 'vhd'), 'EINVAL', /is a VDI image \(static\): use vdi: or image:/);
    await rejects(open('source.raw', 'vhdx'), 'EINVAL', /source\.raw is not a VHDX image .*use raw: or image:/);
    // The extent of a flat VMDK is raw bytes; named as an image of its own it is raw.
    assert.equal((await detectFormat('vm/mono-flat-flat.vmdk', { storeRoot: store })).format, 'raw');
  });
});

const kernelSkip = skip || (process.getuid?.() !== 0 ? 'needs root for a loop mount' : false);

describe('the ext4 partition of each format, tree by tree with the kernel', { skip: kernelSkip }, () => {
  test('VMDK streamOptimized, VHDX dynamic, VHD dynamic, VDI, qcow2 zstd against a loop mount of the raw disk', async () => {
    const expected = await withLoopMount(sourceRaw, { start: MiB, size: 8 * MiB }, 'ro', (m) => readKernelTree(m));
    assert.ok(expected.size >= 20, `only ${expected.size} entries`);
    for (const name of ['vm/stream.vmdk', 'vm/dynamic.vhdx', 'vm/dynamic.vhd', 'vm/dynamic.vdi', 'vm/zstd.qcow2']) {
      const img = await open(name);
      try {
        const [p] = (await readPartitionTable(img)).partitions;
        const fsys = await ext4Driver.open(sliceSource(img, p.start, p.size));
        const { tree, failures } = await readFilesystemTree(fsys);
        assert.deepEqual(failures, [], name);
        assert.deepEqual(compareTrees(expected, tree, ALL_FIELDS), [], name);
      } finally {
        await img.close();
      }
    }
  });
});

describe('VMDK across extent boundaries of a 5 GiB twoGbMaxExtent disk', { skip }, () => {
  for (const sub of ['twoGbMaxExtentSparse', 'twoGbMaxExtentFlat']) {
    test(sub, async () => {
      const name = `vm/big-${sub}.vmdk`;
      run('qemu-img', ['create', '-q', '-f', 'vmdk', '-o', `subformat=${sub}`, at(name), '5G']);
      const writes = [`write -P 0x5a ${2 * 1024 * MiB - 100_000} 200000`, `write -P 0xa5 ${4 * 1024 * MiB - 4096} 8192`, `write -P 0x33 ${5 * 1024 * MiB - 65536} 65536`];
      qemuIo('vmdk', at(name), ...writes);
      const img = await open(name);
      try {
        assert.equal(img.size, 5 * 1024 * MiB);
        assert.ok(img.files.filter((f) => f.role === 'extent').length >= 3, 'three extent files');
        const truth = path.join(work, 'big.raw');
        run('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', at(name), truth]);
        const fd = fs.openSync(truth, 'r');
        try {
          for (const start of [2 * 1024 * MiB - 200_000, 4 * 1024 * MiB - 100_000, 5 * 1024 * MiB - 300_000, 0, 3 * 1024 * MiB]) {
            const length = Math.min(400_000, img.size - start);
            const expected = Buffer.alloc(length);
            fs.readSync(fd, expected, 0, length, start);
            assert.ok((await img.read(start, length)).equals(expected), `${sub} at ${start}`);
          }
        } finally {
          fs.closeSync(fd);
          fs.rmSync(truth);
        }
        if (sub.endsWith('Sparse')) {
          const own = await img.ownRanges();
          assert.ok(own);
          assertCovers(own, qemuOwnRanges(name, 'vmdk'), 64 * 1024, name);
          assert.ok(own.reduce((n, r) => n + r.length, 0) <= 8 * 64 * 1024, 'own ranges are the written grains');
        }
      } finally {
        await img.close();
      }
    });
  }
});

describe('chains across formats', { skip }, () => {
  test('a VMDK delta over a VMDK over a streamOptimized base; a qcow2 over the delta', async () => {
    run('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', sourceRaw, at('vm/chain-base.vmdk')]);
    run('qemu-img', ['create', '-q', '-f', 'vmdk', '-b', 'chain-base.vmdk', '-F', 'vmdk', at('vm/chain-mid.vmdk')]);
    qemuIo('vmdk', at('vm/chain-mid.vmdk'), 'write -P 0xab 1M 64k', 'write -P 0xcd 9M 100k');
    run('qemu-img', ['create', '-q', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', '-b', 'chain-mid.vmdk', '-F', 'vmdk', at('vm/chain-top.vmdk')]);
    qemuIo('vmdk', at('vm/chain-top.vmdk'), 'write -P 0xef 1M 4k', 'write -z 11M 64k');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'chain-top.vmdk', '-F', 'vmdk', at('vm/chain.qcow2')]);
    qemuIo('qcow2', at('vm/chain.qcow2'), 'write -P 0x11 3M 8k');
    for (const [name, format] of [['vm/chain-mid.vmdk', 'vmdk'], ['vm/chain-top.vmdk', 'vmdk'], ['vm/chain.qcow2', 'qcow2']] as const) {
      const img = await open(name);
      try {
        await assertSameBytes(img, qemuBytes(name, format), name);
        const own = await img.ownRanges();
        assert.ok(own, name);
        assertCovers(own, qemuOwnRanges(name, format), 64 * 1024, name);
      } finally {
        await img.close();
      }
    }
    const top = await open('vm/chain.qcow2');
    try {
      const images = top.files.filter((f) => f.role === 'image').map((f) => path.basename(f.path));
      assert.deepEqual(images, ['chain.qcow2', 'chain-top.vmdk', 'chain-mid.vmdk', 'chain-base.vmdk']);
      assert.ok(top.files.some((f) => f.role === 'extent' && path.basename(f.path) === 'chain-top-s001.vmdk'));
      assert.equal(path.basename(top.backingFile ?? ''), 'chain-top.vmdk');
    } finally {
      await top.close();
    }
  });

  for (const base of [
    { name: 'vm/base.vhdx', format: 'vhdx' as const, opts: ['-o', 'subformat=dynamic,block_size=1M'] },
    { name: 'vm/base.vhd', format: 'vhd' as const, opts: ['-o', 'subformat=dynamic'] },
    { name: 'vm/base.vdi', format: 'vdi' as const, opts: [] },
    { name: 'vm/base-flat.vmdk', format: 'vmdk' as const, opts: ['-o', 'subformat=monolithicFlat'] },
  ]) {
    test(`a qcow2 over a ${base.format} base (backing_fmt ${QEMU_FORMAT[base.format]})`, async () => {
      run('qemu-img', ['convert', '-f', 'raw', '-O', QEMU_FORMAT[base.format], ...base.opts, sourceRaw, at(base.name)]);
      const top = `${base.name}.top.qcow2`;
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', path.basename(base.name), '-F', QEMU_FORMAT[base.format], at(top)]);
      qemuIo('qcow2', at(top), 'write -P 0x77 2M 128k', 'write -z 9M 64k');
      const img = await open(top, 'qcow2');
      try {
        await assertSameBytes(img, qemuBytes(top, 'qcow2'), top);
        assert.equal(img.files[1].format, base.format);
        const own = await img.ownRanges();
        assert.ok(own);
        assertCovers(own, qemuOwnRanges(top, 'qcow2'), 64 * 1024, top);
      } finally {
        await img.close();
      }
    });
  }

  test('a VMDK parent outside the store, absolute, or looping is refused', async () => {
    const descriptor = (parent: string): string =>
      `# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=87654321\ncreateType="monolithicFlat"\nparentFileNameHint="${parent}"\n\nRW 2048 FLAT "mono-flat-flat.vmdk" 0\n`;
    fs.writeFileSync(at('vm/escape.vmdk'), descriptor('../../outside.vmdk'));
    await rejects(open('vm/escape.vmdk'), 'EACCES', /leads outside the store/);
    fs.writeFileSync(at('vm/absolute.vmdk'), descriptor(at('vm/mono-flat.vmdk')));
    await rejects(open('vm/absolute.vmdk'), 'EACCES', /absolute path/);
    fs.writeFileSync(at('vm/loop-a.vmdk'), descriptor('loop-b.vmdk'));
    fs.writeFileSync(at('vm/loop-b.vmdk'), descriptor('loop-a.vmdk'));
    await rejects(open('vm/loop-a.vmdk'), 'EINVAL', /loop/);
    // A loop across formats: a qcow2 over a VMDK whose parent is the qcow2.
    fs.writeFileSync(at('vm/cross-b.vmdk'), descriptor('cross-a.qcow2'));
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'cross-b.vmdk', '-F', 'vmdk', at('vm/cross-a.qcow2'), '1M']);
    await rejects(open('vm/cross-a.qcow2'), 'EINVAL', /parent "cross-a\.qcow2" of vm\/cross-b\.vmdk is already in the chain above it/);
    fs.writeFileSync(at('vm/extent-escape.vmdk'), descriptor('').replace('mono-flat-flat.vmdk', '../../../etc/passwd'));
    await rejects(open('vm/extent-escape.vmdk'), 'EACCES', /extent .* leads outside the store/);
  });
});

describe('qcow2 internal snapshots', { skip }, () => {
  test('each snapshot reads as qemu-img convert -l snapshot.name=X; listSnapshots as qemu-img snapshot -l', async () => {
    const name = 'vm/snapshots.qcow2';
    run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', sourceRaw, at(name)]);
    run('qemu-img', ['snapshot', '-c', 'before-upgrade', at(name)]);
    qemuIo('qcow2', at(name), 'write -P 0xab 1M 64k', 'write -z 10M 1M');
    run('qemu-img', ['snapshot', '-c', 'after-upgrade', at(name)]);
    run('qemu-img', ['resize', '-q', at(name), '14M']);
    qemuIo('qcow2', at(name), 'write -P 0xcd 13M 64k', 'discard 9M 64k');
    const info = JSON.parse(run('qemu-img', ['info', '--output=json', at(name)])) as { snapshots: { id: string; name: string; 'vm-state-size': number; 'date-sec': number }[] };
    const img = await open(name);
    try {
      const listed = img.listSnapshots();
      assert.deepEqual(
        listed.map((s) => [s.id, s.name, s.vmStateSize, Math.floor(s.date.getTime() / 1000)]),
        info.snapshots.map((s) => [s.id, s.name, s['vm-state-size'], s['date-sec']]),
      );
      assert.deepEqual(listed.map((s) => s.virtualSize), [12 * MiB, 12 * MiB]);
      assert.equal(img.size, 14 * MiB);
      await assertSameBytes(img, qemuBytes(name, 'qcow2'), 'active state');
    } finally {
      await img.close();
    }
    for (const wanted of ['before-upgrade', 'after-upgrade', '1']) {
      const snap = await open(name, 'qcow2', wanted);
      try {
        assert.ok(snap.snapshot);
        const truth = qemuBytes(name, 'qcow2', ['-l', /^\d+$/.test(wanted) ? `snapshot.id=${wanted}` : `snapshot.name=${wanted}`]);
        await assertSameBytes(snap, truth, `snapshot ${wanted}`);
      } finally {
        await snap.close();
      }
    }
    await rejects(open(name, 'qcow2', 'nope'), 'ENOENT', /has no snapshot "nope"; its snapshots: 1 "before-upgrade", 2 "after-upgrade"/);
    await rejects(open('vm/dynamic.vhdx', undefined, 'x'), 'EINVAL', /only qcow2 images have internal snapshots/);
  });
});
