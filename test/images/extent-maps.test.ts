import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DirSource, ImageSource, type ExtentRun, type LayerObject, type LayerSource } from '@strata/traversal';
import { canLoopMount, hasTool, partitionDisk, run, snapshotFromRaw, withLoop, withLoopMount, type PartitionWindow } from './disk-fixture';

/**
 * Extent maps of a layer's files, composed through the filesystem's extents,
 * the partition's place on the disk and the image chain's own map: reading
 * every data run straight from the store file it names (zeros for zero
 * runs, the layer for unmapped ones) must give exactly what the layer's
 * read() gives, for every regular file of ext4 and XFS filesystems the
 * kernel wrote, on a qcow2 chain, a VMDK and a compressed qcow2.
 */

const skip = canLoopMount('mke2fs', 'mkfs.xfs', 'qemu-img', 'sfdisk') ? false : 'needs root, loop devices, mke2fs, mkfs.xfs, qemu-img and sfdisk';
let work: string;
let store: string;
let parts: PartitionWindow[];

/** Deterministic bytes that differ everywhere: a run read from the wrong offset cannot match. */
function bytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let a = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = a >>> 24;
  }
  return out;
}

/** Files of many sizes, a sparse one, a preallocated one, and two written in interleaved, synced pieces (fragmented). */
function fill(m: string, tag: number): void {
  fs.mkdirSync(path.join(m, 'd/e'), { recursive: true });
  for (const [i, size] of [0, 1, 100, 4095, 4096, 4097, 70_000, 1_048_579, 2_500_000].entries()) fs.writeFileSync(path.join(m, 'd', `f${size}`), bytes(size, tag * 100 + i));
  const sparse = fs.openSync(path.join(m, 'd/e/sparse'), 'w');
  for (const at of [0, 300_000, 1_900_001]) fs.writeSync(sparse, bytes(9000, at), 0, 9000, at);
  fs.ftruncateSync(sparse, 3_000_000);
  fs.closeSync(sparse);
  run('fallocate', ['-l', '1M', path.join(m, 'd/e/prealloc')]);
  const a = fs.openSync(path.join(m, 'd/frag-a'), 'w');
  const b = fs.openSync(path.join(m, 'd/frag-b'), 'w');
  for (let i = 0; i < 40; i++) {
    fs.writeSync(a, bytes(12_288, i));
    fs.fsyncSync(a);
    fs.writeSync(b, bytes(8192, 1000 + i));
    fs.fsyncSync(b);
  }
  fs.closeSync(a);
  fs.closeSync(b);
}

/** What a guest changes between the base and the snapshot: appends, an overwrite in the middle, a new file. */
function change(m: string): void {
  fs.appendFileSync(path.join(m, 'd/f70000'), bytes(50_000, 77));
  const fd = fs.openSync(path.join(m, 'd/f1048579'), 'r+');
  fs.writeSync(fd, bytes(200_000, 78), 0, 200_000, 300_000);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(m, 'd/e/new'), bytes(500_000, 79));
}

before(() => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-extent-maps-'));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  const raw = path.join(work, 'base.raw');
  parts = partitionDisk(raw, 400, 'label: gpt\nsize=40MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n');
  withLoop(raw, parts[0], (dev) => run('mke2fs', ['-q', '-F', '-t', 'ext4', dev]));
  withLoop(raw, parts[1], (dev) => run('mkfs.xfs', ['-q', '-f', dev]));
  return (async () => {
    await withLoopMount(raw, parts[0], 'rw', (m) => fill(m, 1));
    await withLoopMount(raw, parts[1], 'rw', (m) => fill(m, 2));
    const vm = path.join(store, 'vm');
    run('qemu-img', ['convert', '-O', 'qcow2', raw, 'base.qcow2'], vm);
    const after = path.join(work, 'after.raw');
    fs.copyFileSync(raw, after);
    await withLoopMount(after, parts[0], 'rw', change);
    await withLoopMount(after, parts[1], 'rw', change);
    snapshotFromRaw(vm, 'base.qcow2', raw, after, 'top.qcow2');
    run('qemu-img', ['convert', '-O', 'vmdk', '-o', 'subformat=monolithicSparse', after, 'disk.vmdk'], vm);
    run('qemu-img', ['convert', '-c', '-O', 'qcow2', after, 'packed.qcow2'], vm);
    fs.rmSync(raw);
    fs.rmSync(after);
  })();
});
after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function preadFile(file: string, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = fs.openSync(file, 'r');
  try {
    assert.equal(fs.readSync(fd, buf, 0, length, offset), length, `pread ${length} at ${offset} of ${file}`);
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** The runs read back; returns the unmapped reasons and the store files the data runs named. */
async function readRuns(layer: LayerSource, obj: LayerObject, offset: number, runs: readonly ExtentRun[], seen: { reasons: Set<string>; files: Set<string> }): Promise<Buffer> {
  const out: Buffer[] = [];
  let pos = offset;
  for (const r of runs) {
    assert.ok(r.length > 0);
    if (r.kind === 'data') {
      seen.files.add(r.file);
      out.push(preadFile(r.file, r.fileOffset, r.length));
    } else if (r.kind === 'zero') out.push(Buffer.alloc(r.length));
    else {
      seen.reasons.add(r.reason);
      out.push(await layer.read(obj, pos, r.length));
    }
    pos += r.length;
  }
  return Buffer.concat(out);
}

/** Every regular file of the layer: whole, and two windows, mapped and read back, equal read(). */
async function checkLayer(layer: LayerSource): Promise<{ files: number; reasons: Set<string>; stores: Set<string> }> {
  assert.ok(layer.extentMap, 'the layer maps extents');
  const seen = { reasons: new Set<string>(), files: new Set<string>() };
  let files = 0;
  const queue: LayerObject[] = [await layer.root()];
  while (queue.length > 0) {
    const dir = queue.pop() as LayerObject;
    for (const e of await layer.list(dir)) {
      const obj = await layer.lookup(dir, e.name);
      assert.ok(obj);
      if (e.type === 'dir') queue.push(obj);
      if (e.type !== 'file') continue;
      files++;
      const size = Number(obj.st.size);
      for (const [offset, length] of [[0, size + 10], [Math.floor(size / 3), 123_457], [Math.max(0, size - 4097), 8192]]) {
        const runs = await layer.extentMap(obj, offset, length);
        const expected = await layer.read(obj, offset, length);
        assert.equal(runs.reduce((n, r) => n + r.length, 0), expected.length, `${e.name.toString()} ${offset}+${length}: runs cover the range`);
        const got = await readRuns(layer, obj, offset, runs, seen);
        assert.ok(got.equals(expected), `${e.name.toString()} ${offset}+${length}: runs read straight from the store equal read()`);
      }
    }
  }
  return { files, reasons: seen.reasons, stores: new Set([...seen.files].map((f) => path.basename(f))) };
}

for (const partition of [1, 2]) {
  const fsName = partition === 1 ? 'ext4' : 'xfs';
  test(`${fsName} on a qcow2 chain: every file's extent map reads as the layer does, from both files of the chain`, { skip }, async () => {
    const layer = await ImageSource.open({ storeRoot: store, image: 'vm/top.qcow2', format: 'qcow2', partition });
    try {
      assert.equal(layer.filesystemType, fsName);
      const r = await checkLayer(layer);
      assert.ok(r.files >= 14, `${r.files} files`);
      assert.deepEqual([...r.reasons], []);
      assert.deepEqual([...r.stores].sort(), ['base.qcow2', 'top.qcow2']);
    } finally {
      await layer.close();
    }
  });

  test(`${fsName} on a VMDK: every file maps into the VMDK file`, { skip }, async () => {
    const layer = await ImageSource.open({ storeRoot: store, image: 'vm/disk.vmdk', format: 'vmdk', partition });
    try {
      const r = await checkLayer(layer);
      assert.deepEqual([...r.reasons], []);
      assert.deepEqual([...r.stores], ['disk.vmdk']);
    } finally {
      await layer.close();
    }
  });

  test(`${fsName} on a compressed qcow2: compressed clusters come back unmapped, and still read as the layer does`, { skip }, async () => {
    const layer = await ImageSource.open({ storeRoot: store, image: 'vm/packed.qcow2', format: 'qcow2', partition });
    try {
      const r = await checkLayer(layer);
      assert.ok(r.reasons.has('compressed cluster'), [...r.reasons].join(', '));
    } finally {
      await layer.close();
    }
  });
}

test('a dir: layer maps each file to itself', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-extent-dir-'));
  try {
    fs.mkdirSync(path.join(root, 'sub'));
    fs.writeFileSync(path.join(root, 'sub/a'), bytes(100_000, 5));
    fs.writeFileSync(path.join(root, 'empty'), '');
    const layer = new DirSource(root);
    const r = await checkLayer(layer);
    assert.equal(r.files, 2);
    const sub = await layer.lookup(await layer.root(), Buffer.from('sub'));
    assert.ok(sub && layer.extentMap);
    const a = await layer.lookup(sub, Buffer.from('a'));
    assert.ok(a);
    assert.deepEqual(await layer.extentMap(a, 10, 1_000_000), [{ kind: 'data', file: fs.realpathSync(path.join(root, 'sub/a')), fileOffset: 10, length: 99_990 }]);
    await assert.rejects(layer.extentMap(sub, 0, 1), /directory/);
    await layer.close();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

const MIB = 1024 * 1024;

test('ext4 on a logical volume of two segments (out of order on the PV): runs land where the segments put them', { skip: skip || (hasTool('lvcreate') ? false : 'needs lvm2') }, async () => {
  const dir = path.join(store, 'lv');
  fs.mkdirSync(dir);
  const raw = path.join(work, 'lv.raw');
  const [pvPart] = partitionDisk(raw, 80, 'label: gpt\ntype=E6D6D379-F507-44C2-A23C-238F2A3DF928\n');
  const segments: { lvStart: number; diskStart: number; length: number }[] = [];
  withLoop(raw, pvPart, (dev) => {
    const config = `global{activation=0} devices{filter=["a|^${dev}$|","r|.*|"] use_devicesfile=0 obtain_device_list_from_udev=0 scan_lvs=0} backup{backup=0 archive=0}`;
    const env = { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' };
    const lvm = (cmd: string, ...args: string[]): string => execFileSync(cmd, ['--config', config, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    lvm('pvcreate', '-ff', '-y', dev);
    lvm('vgcreate', '-s', '4m', 'tvg', dev);
    lvm('lvcreate', '-an', '--zero', 'n', '-L', '12m', '-n', 'data', 'tvg');
    lvm('lvcreate', '-an', '--zero', 'n', '-L', '8m', '-n', 'pad', 'tvg');
    lvm('lvextend', '-L', '+16m', 'tvg/data');
    const peStart = Number(JSON.parse(lvm('pvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'pe_start')).report[0].pv[0].pe_start);
    const segs = JSON.parse(lvm('lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '--segments', '-o', 'lv_name,seg_start,seg_size,seg_pe_ranges', 'tvg/data')).report[0].seg as { seg_start: string; seg_size: string; seg_pe_ranges: string }[];
    for (const sg of segs) {
      const first = Number(/:(\d+)-/.exec(sg.seg_pe_ranges)?.[1]);
      segments.push({ lvStart: Number(sg.seg_start), diskStart: pvPart.start + peStart + first * 4 * MIB, length: Number(sg.seg_size) });
    }
  });
  assert.equal(segments.length, 2, JSON.stringify(segments));
  // The filesystem is built apart and laid into the segments, as the LV maps it (no device-mapper here).
  const tree = path.join(work, 'lv-tree');
  fs.mkdirSync(tree);
  fill(tree, 3);
  const image = path.join(work, 'lv-fs.img');
  run('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', tree, image, '28M']);
  const fsBytes = fs.readFileSync(image);
  const fd = fs.openSync(raw, 'r+');
  try {
    for (const sg of segments) fs.writeSync(fd, fsBytes, sg.lvStart, Math.min(sg.length, fsBytes.length - sg.lvStart), sg.diskStart);
  } finally {
    fs.closeSync(fd);
  }
  run('qemu-img', ['convert', '-O', 'qcow2', raw, path.join(dir, 'lv.qcow2')]);
  fs.rmSync(raw);
  const layer = await ImageSource.open({ storeRoot: store, image: 'lv/lv.qcow2', format: 'qcow2', logicalVolume: { vg: 'tvg', lv: 'data' } });
  try {
    const r = await checkLayer(layer);
    assert.ok(r.files >= 13, `${r.files} files`);
    assert.deepEqual([...r.reasons], []);
  } finally {
    await layer.close();
  }
});
