import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { detectFormat, openImage } from '../index';
import { prng, qemuImg, qemuTruth, rejectsWith, tempDir } from '../fixtures';
import { seSparseExtent } from './sesparse-fixture';

let store: string;
let cleanup: () => void;
const MiB = 1024 * 1024;
const at = (name: string): string => path.join(store, name);

before(() => {
  ({ dir: store, cleanup } = tempDir('vmdk'));
  store = realpathSync(store);
  const raw = Buffer.alloc(4 * 1024 * 1024);
  const rnd = prng(9);
  for (let o = 0; o < raw.length; o += 65536) if (rnd() < 0.6) raw.fill(1 + Math.floor(rnd() * 254), o, o + 65536);
  writeFileSync(at('src.raw'), raw);
});
after(() => cleanup());


function descriptor(lines: string[]): string {
  return ['# Disk DescriptorFile', 'version=1', 'CID=fffffffe', 'parentCID=ffffffff', ...lines, ''].join('\n');
}

describe('VMDK', () => {
  test('a grain directory pointing outside the file: the redundant copy is used', async () => {
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=monolithicSparse', at('src.raw'), at('rgd.vmdk'));
    const truth = qemuTruth(at('rgd.vmdk'), store);
    const b = readFileSync(at('rgd.vmdk'));
    assert.ok(b.readUInt32LE(8) & 2, 'qemu writes a redundant grain directory');
    const gd = Number(b.readBigUInt64LE(56)) * 512;
    const rgd = Number(b.readBigUInt64LE(48)) * 512;
    assert.notEqual(gd, rgd);
    // Every primary entry now points far past the end of the file.
    for (let i = 0; i < 4; i++) b.writeUInt32LE(0x7fffff00, gd + i * 4);
    writeFileSync(at('rgd.vmdk'), b);
    const img = await openImage('rgd.vmdk', { storeRoot: store });
    try {
      assert.ok((await img.read(0, img.size)).equals(truth));
    } finally {
      await img.close();
    }
    // A damaged primary grain table (entries past the end of the file): the redundant table's entries are used.
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=monolithicSparse', at('src.raw'), at('gt.vmdk'));
    const g = readFileSync(at('gt.vmdk'));
    const primaryTable = g.readUInt32LE(Number(g.readBigUInt64LE(56)) * 512) * 512;
    let damaged = 0;
    for (let e = 0; e < 64; e++) {
      if (g.readUInt32LE(primaryTable + e * 4) === 0) continue;
      g.writeUInt32LE(0x7ffffff0, primaryTable + e * 4);
      damaged++;
    }
    assert.ok(damaged > 10, `${damaged} grain table entries damaged`);
    writeFileSync(at('gt.vmdk'), g);
    const viaBackup = await openImage('gt.vmdk', { storeRoot: store });
    try {
      assert.ok((await viaBackup.read(0, viaBackup.size)).equals(truth));
    } finally {
      await viaBackup.close();
    }
    // Without the redundant-GD flag there is nothing to fall back on.
    b.writeUInt32LE(b.readUInt32LE(8) & ~2, 8);
    writeFileSync(at('no-rgd.vmdk'), b);
    const broken = await openImage('no-rgd.vmdk', { storeRoot: store });
    try {
      await rejectsWith(broken.read(0, 65536), 'EIO', /grain directory entry 0 points at sector/);
    } finally {
      await broken.close();
    }
  });

  test('ZERO extents and a FLAT extent at an offset, from a hand-written descriptor', async () => {
    const flat = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < flat.length; i++) flat[i] = (i * 7) & 0xff;
    writeFileSync(at('data.bin'), flat);
    writeFileSync(at('custom.vmdk'), descriptor(['createType="custom"', 'RW 2048 FLAT "data.bin" 2048', 'RW 1024 ZERO', 'RDONLY 1024 FLAT "data.bin" 0']));
    const img = await openImage('custom.vmdk', { storeRoot: store, format: 'vmdk' });
    try {
      assert.equal(img.subformat, 'custom');
      assert.equal(img.size, 4096 * 512);
      const all = await img.read(0, img.size);
      assert.ok(all.subarray(0, MiB).equals(flat.subarray(MiB, 2 * MiB)));
      assert.ok(all.subarray(MiB, MiB + 512 * 1024).every((x) => x === 0));
      assert.ok(all.subarray(MiB + 512 * 1024).equals(flat.subarray(0, 512 * 1024)));
      assert.equal(img.files.filter((f) => f.role === 'extent').length, 2);
    } finally {
      await img.close();
    }
  });

  test('an ESXi seSparse delta over a monolithicSparse base, as qemu reads it', async () => {
    const size = 8 * MiB;
    const base = Buffer.alloc(size);
    const rnd = prng(31);
    for (let i = 0; i < size; i++) base[i] = Math.floor(rnd() * 256);
    writeFileSync(at('se-base.raw'), base);
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', at('se-base.raw'), at('se-base.vmdk'));
    const grains: [number, number][] = [[0, 0], [5, 1], [1000, 2], [2047, 3]];
    const extent = seSparseExtent(size, grains, [6]);
    // Grain 7 unmapped (type 1, a stale index kept): zeros too.
    extent.writeBigUInt64LE((1n << 60n) | 5n, 16 * 512 + 7 * 8);
    const expected = Buffer.from(base);
    for (const [guestGrain, index] of grains) expected.fill(0x40 + index, guestGrain * 4096, (guestGrain + 1) * 4096);
    expected.fill(0, 6 * 4096, 8 * 4096);
    writeFileSync(at('se-delta-sesparse.vmdk'), extent);
    const baseCid = /CID=([0-9a-f]+)/.exec(readFileSync(at('se-base.vmdk')).subarray(512, 1536).toString('latin1'))?.[1];
    assert.ok(baseCid, 'the base has a CID');
    const delta = (parentCid: string): string =>
      descriptor(['createType="seSparse"', 'parentFileNameHint="se-base.vmdk"', `RW ${size / 512} SESPARSE "se-delta-sesparse.vmdk"`]).replace('parentCID=ffffffff', `parentCID=${parentCid}`);
    writeFileSync(at('se-delta.vmdk'), delta(baseCid));
    const truth = qemuTruth(at('se-delta.vmdk'), store);
    assert.ok(truth.equals(expected), 'qemu reads the crafted seSparse delta as intended');
    const img = await openImage('se-delta.vmdk', { storeRoot: store });
    try {
      assert.equal(img.subformat, 'seSparse');
      assert.ok((await img.read(0, img.size)).equals(truth));
      assert.deepEqual(await img.ownRanges(), [
        { offset: 0, length: 4096 },
        { offset: 5 * 4096, length: 3 * 4096 },
        { offset: 1000 * 4096, length: 4096 },
        { offset: 2047 * 4096, length: 4096 },
      ]);
    } finally {
      await img.close();
    }
    // A parent written after the snapshot (its CID moved on): refused, as qemu refuses reading through it.
    writeFileSync(at('se-delta.vmdk'), delta(baseCid === '1234abcd' ? '1234abce' : '1234abcd'));
    await rejectsWith(openImage('se-delta.vmdk', { storeRoot: store }), 'EINVAL', /has content ID .* the parent was written after the snapshot/);
    writeFileSync(at('se-delta.vmdk'), delta(baseCid));
    // A journal to replay, as qemu: refused.
    extent.writeBigUInt64LE(1n, 512 + 24);
    writeFileSync(at('se-delta-sesparse.vmdk'), extent);
    await rejectsWith(openImage('se-delta.vmdk', { storeRoot: store }), 'EOPNOTSUPP', /journal to replay/);
  });

  test('refused clearly: encryption, raw device mappings, ESXi deltas, COWD, unknown extent types', async () => {
    const cases: [string, string[], RegExp][] = [
      ['enc.vmdk', ['createType="monolithicFlat"', 'encryption.keySafe = "vmware:key/list/..."', 'encryption.data = "AAAA"', 'RW 8 FLAT "data.bin" 0'], /encrypted disks are not supported/],
      ['rdm.vmdk', ['createType="vmfsRawDeviceMap"', 'RW 8 VMFSRDM "disk-rdm.vmdk"'], /raw device mapping/],
      ['rdmp.vmdk', ['createType="vmfsPassthroughRawDeviceMap"', 'RW 8 VMFSRDM "disk-rdmp.vmdk"'], /raw device or a VMFS-only disk/],
      ['vmfssparse.vmdk', ['createType="vmfsSparse"', 'RW 8 VMFSSPARSE "disk-delta.vmdk"'], /COWD snapshot deltas/],
      ['odd.vmdk', ['createType="custom"', 'RW 8 WHATEVER "data.bin"'], /type WHATEVER, which is not supported/],
    ];
    for (const [name, lines, message] of cases) {
      writeFileSync(at(name), descriptor(lines));
      await rejectsWith(openImage(name, { storeRoot: store }), 'EOPNOTSUPP', message);
    }
    const cowd = Buffer.alloc(2048);
    cowd.write('COWD', 0, 'latin1');
    writeFileSync(at('cowd.vmdk'), cowd);
    assert.deepEqual(await detectFormat('cowd.vmdk', { storeRoot: store }), { format: 'vmdk', subformat: 'vmfsSparse' });
    await rejectsWith(openImage('cowd.vmdk', { storeRoot: store }), 'EOPNOTSUPP', /COWD/);
  });
});
