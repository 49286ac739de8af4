import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { openImage, readPartitionTable } from './index';
import { prng, qemuImg, rejectsWith, tempDir } from './fixtures';

/**
 * Differencing VHD and VHDX disks (Hyper-V checkpoints). qemu neither makes
 * nor reads them, so each child is a dynamic disk made by qemu-img and turned
 * into a differencing one here, field by field as the specifications say
 * (MS-VHDX; the VHD format specification): the expected bytes are the
 * parent's, overlaid by the child's blocks and, in a partially present block,
 * only by the sectors its bitmap marks.
 */

let store: string;
let cleanup: () => void;

before(() => {
  ({ dir: store, cleanup } = tempDir('differencing'));
  store = realpathSync(store);
});
after(() => cleanup());

const at = (name: string): string => path.join(store, name);
const MiB = 1024 * 1024;

function randomDisk(seed: number, size: number, fill: number): Buffer {
  const rnd = prng(seed);
  const b = Buffer.alloc(size);
  for (let o = 0; o < size; o += 4096) if (rnd() < fill) for (let i = o; i < o + 4096; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

/** The GUID's on-disk bytes (first three fields little-endian). */
function guidBytes(text: string): Buffer {
  const hex = text.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

function vhdChecksum(b: Buffer, from: number, length: number, field: number): void {
  b.writeUInt32BE(0, from + field);
  let sum = 0;
  for (let i = from; i < from + length; i++) sum = (sum + b[i]) >>> 0;
  b.writeUInt32BE(~sum >>> 0, from + field);
}

/** A differencing VHD: the dynamic child's footer type set to 4, a W2ru parent locator added, one block's bitmap halved. */
function makeDifferencingVhd(child: string, parentName: string, locatorCode = 'W2ru'): { bitmapCleared: [number, number] } {
  const b = readFileSync(at(child));
  const footer = Buffer.from(b.subarray(b.length - 512));
  footer.writeUInt32BE(4, 60);
  vhdChecksum(footer, 0, 512, 64);
  const body = Buffer.from(b.subarray(0, b.length - 512));
  footer.copy(body, 0);
  // The locator's data goes where the footer was; the footer moves one sector on.
  const name = Buffer.from(parentName.replace(/\//g, '\\'), 'utf16le');
  const locator = Buffer.alloc(512);
  name.copy(locator);
  const locatorAt = body.length;
  const dyn = 512;
  body.write(locatorCode, dyn + 576, 'latin1');
  body.writeUInt32BE(1, dyn + 576 + 4);
  body.writeUInt32BE(name.length, dyn + 576 + 8);
  body.writeBigUInt64BE(BigInt(locatorAt), dyn + 576 + 16);
  vhdChecksum(body, dyn, 1024, 36);
  // Block 0's first 1024 sectors (512 KiB) are not the child's: the parent's show through.
  const bat = Number(body.readBigUInt64BE(dyn + 16));
  const block0 = body.readUInt32BE(bat) * 512;
  body.fill(0, block0, block0 + 128);
  writeFileSync(at(child), Buffer.concat([body, locator, footer]));
  return { bitmapCleared: [0, 512 * 1024] };
}

describe('differencing VHD', () => {
  test('reads the parent under the child, sector by sector where the block bitmap says so', async () => {
    const size = 6 * MiB;
    const parent = randomDisk(1, size, 0.9);
    const child = randomDisk(2, size, 0.3);
    // Child blocks of 2 MiB: block 0 allocated (half of it masked below), block 1 empty (parent), block 2 allocated.
    child.fill(0, 2 * MiB, 4 * MiB);
    writeFileSync(at('parent.raw'), parent);
    writeFileSync(at('child.raw'), child);
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vpc', at('parent.raw'), at('parent.vhd'));
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vpc', at('child.raw'), at('child.vhd'));
    const { bitmapCleared } = makeDifferencingVhd('child.vhd', 'parent.vhd');
    const img = await openImage('child.vhd', { storeRoot: store });
    try {
      assert.equal(img.format, 'vhd');
      assert.equal(img.subformat, 'differencing');
      assert.equal(path.basename(img.backingFile ?? ''), 'parent.vhd');
      const expected = Buffer.alloc(img.size);
      parent.copy(expected, 0, 0, Math.min(size, img.size));
      const own = (o: number): boolean => {
        if (o >= bitmapCleared[0] && o < bitmapCleared[1]) return false;
        return !(o >= 2 * MiB && o < 4 * MiB);
      };
      for (let o = 0; o < Math.min(size, img.size); o += 512) if (own(o)) child.copy(expected, o, o, o + 512);
      assert.ok((await img.read(0, img.size)).equals(expected), 'bytes');
      assert.ok((await img.read(bitmapCleared[1] - 700, 1400)).equals(expected.subarray(bitmapCleared[1] - 700, bitmapCleared[1] + 700)), 'across the bitmap edge');
      const ranges = await img.ownRanges();
      assert.deepEqual(ranges, [
        { offset: 512 * 1024, length: 2 * MiB - 512 * 1024 },
        { offset: 4 * MiB, length: size - 4 * MiB },
      ]);
    } finally {
      await img.close();
    }
  });

  test('a parent named only by an absolute path, a parent loop, a parent outside the store', async () => {
    writeFileSync(at('c.raw'), randomDisk(3, 2 * MiB, 0.5));
    for (const [name, parent, code] of [['abs.vhd', 'C:/vms/parent.vhd', 'W2ku'], ['self.vhd', 'self.vhd', 'W2ru'], ['out.vhd', '../outside.vhd', 'W2ru']]) {
      qemuImg('convert', '-q', '-f', 'raw', '-O', 'vpc', at('c.raw'), at(name));
      makeDifferencingVhd(name, parent, code);
    }
    await rejectsWith(openImage('abs.vhd', { storeRoot: store }), 'EACCES', /absolute path/);
    await rejectsWith(openImage('self.vhd', { storeRoot: store }), 'EINVAL', /loop/);
    await rejectsWith(openImage('out.vhd', { storeRoot: store }), 'EACCES', /outside the store/);
  });
});

const FILE_PARAMETERS = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
const LOGICAL_SECTOR_SIZE = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
const PARENT_LOCATOR = 'a8d35f2b-b30b-454d-abf7-d3d84834ab0c';
const LOCATOR_TYPE = 'b04aefb7-d19e-4a81-b789-25b8e9445913';

interface VhdxLayout {
  bytes: Buffer;
  batOffset: number;
  metadataOffset: number;
  item(guid: string): { entry: number; offset: number; length: number } | undefined;
}

function vhdxLayout(bytes: Buffer): VhdxLayout {
  const rt = 192 * 1024;
  let batOffset = 0;
  let metadataOffset = 0;
  for (let i = 0; i < bytes.readUInt32LE(rt + 8); i++) {
    const e = rt + 16 + i * 32;
    const guid = bytes.subarray(e, e + 16);
    if (guid.equals(guidBytes('2dc27766-f623-4200-9d64-115e9bfd4a08'))) batOffset = Number(bytes.readBigUInt64LE(e + 16));
    if (guid.equals(guidBytes('8b7ca206-4790-4b9a-b8fe-575f050f886e'))) metadataOffset = Number(bytes.readBigUInt64LE(e + 16));
  }
  return {
    bytes,
    batOffset,
    metadataOffset,
    item(guid) {
      const count = bytes.readUInt16LE(metadataOffset + 10);
      for (let i = 0; i < count; i++) {
        const e = metadataOffset + 32 + i * 32;
        if (bytes.subarray(e, e + 16).equals(guidBytes(guid))) return { entry: e, offset: bytes.readUInt32LE(e + 16), length: bytes.readUInt32LE(e + 20) };
      }
      return undefined;
    },
  };
}

function utf16(s: string): Buffer {
  return Buffer.from(s, 'utf16le');
}

/**
 * A differencing VHDX from a dynamic one with 1 MiB blocks: has-parent set,
 * a parent locator item added, block 1 partially present (every other 4 KiB
 * of it), block 2 not present (the parent's), block 3 zero.
 */
function makeDifferencingVhdx(child: string, relativePath: string | undefined, absolute?: string): void {
  const l = vhdxLayout(readFileSync(at(child)));
  const b = l.bytes;
  const params = l.item(FILE_PARAMETERS);
  assert.ok(params);
  b.writeUInt32LE(b.readUInt32LE(l.metadataOffset + params.offset + 4) | 2, l.metadataOffset + params.offset + 4);
  const pairs: [string, string][] = [['parent_linkage', '{00000000-0000-0000-0000-000000000000}']];
  if (relativePath !== undefined) pairs.push(['relative_path', relativePath.replace(/\//g, '\\')]);
  if (absolute !== undefined) pairs.push(['absolute_win32_path', absolute]);
  const header = Buffer.alloc(20 + pairs.length * 12);
  guidBytes(LOCATOR_TYPE).copy(header);
  header.writeUInt16LE(pairs.length, 18);
  const strings: Buffer[] = [];
  let offset = header.length;
  pairs.forEach(([k, v], i) => {
    const kb = utf16(k);
    const vb = utf16(v);
    header.writeUInt32LE(offset, 20 + i * 12);
    header.writeUInt32LE(offset + kb.length, 20 + i * 12 + 4);
    header.writeUInt16LE(kb.length, 20 + i * 12 + 8);
    header.writeUInt16LE(vb.length, 20 + i * 12 + 10);
    strings.push(kb, vb);
    offset += kb.length + vb.length;
  });
  const locator = Buffer.concat([header, ...strings]);
  const itemOffset = 512 * 1024;
  locator.copy(b, l.metadataOffset + itemOffset);
  const count = b.readUInt16LE(l.metadataOffset + 10);
  const e = l.metadataOffset + 32 + count * 32;
  guidBytes(PARENT_LOCATOR).copy(b, e);
  b.writeUInt32LE(itemOffset, e + 16);
  b.writeUInt32LE(locator.length, e + 20);
  b.writeUInt32LE(4, e + 24);
  b.writeUInt16LE(count + 1, l.metadataOffset + 10);
  // The sector bitmap of chunk 0 (chunk ratio 4096 with 512-byte sectors and 1 MiB blocks) in a new MiB at the end.
  const bitmapAt = Math.ceil(b.length / MiB) * MiB;
  const bitmap = Buffer.alloc(MiB);
  const sectorsPerBlock = MiB / 512;
  for (let s = 0; s < sectorsPerBlock; s++) if (Math.floor(s / 8) % 2 === 0) bitmap[(sectorsPerBlock + s) >> 3] |= 1 << (s & 7);
  const entry = (i: number): number => l.batOffset + i * 8;
  const set = (i: number, state: number, mb: number): void => {
    b.writeUInt32LE(((mb & 0xfff) << 20) | state, entry(i));
    b.writeUInt32LE(Math.floor(mb / 4096), entry(i) + 4);
  };
  const mbOf = (i: number): number => b.readUInt32LE(entry(i) + 4) * 4096 + (b.readUInt32LE(entry(i)) >>> 20);
  set(1, 7, mbOf(1));
  set(2, 0, 0);
  set(3, 2, 0);
  set(4096, 6, bitmapAt / MiB);
  const out = Buffer.alloc(bitmapAt + MiB);
  b.copy(out);
  bitmap.copy(out, bitmapAt);
  writeFileSync(at(child), out);
}

describe('differencing VHDX', () => {
  test('not-present blocks read from the parent, partially present ones by the sector bitmap', async () => {
    const size = 6 * MiB;
    const parent = randomDisk(11, size, 0.9);
    const child = randomDisk(12, size, 1);
    writeFileSync(at('parent.raw'), parent);
    writeFileSync(at('child-x.raw'), child);
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', at('parent.raw'), at('parent.vhdx'));
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', at('child-x.raw'), at('child.vhdx'));
    makeDifferencingVhdx('child.vhdx', './parent.vhdx');
    const img = await openImage('child.vhdx', { storeRoot: store, format: 'vhdx' });
    try {
      assert.equal(img.subformat, 'differencing');
      assert.equal(path.basename(img.backingFile ?? ''), 'parent.vhdx');
      const expected = Buffer.from(child);
      parent.copy(expected, 2 * MiB, 2 * MiB, 3 * MiB);
      expected.fill(0, 3 * MiB, 4 * MiB);
      for (let s = 0; s < MiB / 512; s++) {
        if (Math.floor(s / 8) % 2 !== 0) parent.copy(expected, MiB + s * 512, MiB + s * 512, MiB + s * 512 + 512);
      }
      assert.ok((await img.read(0, size)).equals(expected), 'bytes');
      const own = await img.ownRanges();
      assert.ok(own);
      assert.deepEqual(own[0], { offset: 0, length: MiB + 4096 });
      assert.equal(own.filter((r) => r.offset > MiB && r.offset < 2 * MiB).length, 127);
      assert.deepEqual(own[own.length - 1], { offset: 3 * MiB, length: 3 * MiB });
    } finally {
      await img.close();
    }
  });

  test('a parent named only by an absolute path, a parent loop', async () => {
    writeFileSync(at('small.raw'), randomDisk(13, 4 * MiB, 0.5));
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vhdx', '-o', 'block_size=1M', at('small.raw'), at('abs.vhdx'));
    makeDifferencingVhdx('abs.vhdx', undefined, 'C:\\VMs\\base.vhdx');
    await rejectsWith(openImage('abs.vhdx', { storeRoot: store }), 'EACCES', /absolute path/);
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vhdx', '-o', 'block_size=1M', at('small.raw'), at('loop.vhdx'));
    makeDifferencingVhdx('loop.vhdx', 'loop.vhdx');
    await rejectsWith(openImage('loop.vhdx', { storeRoot: store }), 'EINVAL', /loop/);
  });

  test('4 KiB logical sectors are reported, and an MBR on them counts in 4 KiB', async () => {
    // A 4Kn disk: its MBR counts in 4 KiB sectors (partition 1 at LBA 256 = 1 MiB, 512 sectors = 2 MiB).
    const disk4k = randomDisk(15, 4 * MiB, 0.5);
    disk4k.fill(0, 0, 512);
    disk4k[446 + 4] = 0x83;
    disk4k.writeUInt32LE(256, 446 + 8);
    disk4k.writeUInt32LE(512, 446 + 12);
    disk4k[510] = 0x55;
    disk4k[511] = 0xaa;
    writeFileSync(at('small.raw'), disk4k);
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vhdx', '-o', 'block_size=1M', at('small.raw'), at('4k.vhdx'));
    const l = vhdxLayout(readFileSync(at('4k.vhdx')));
    const item = l.item(LOGICAL_SECTOR_SIZE);
    assert.ok(item);
    l.bytes.writeUInt32LE(4096, l.metadataOffset + item.offset);
    writeFileSync(at('4k.vhdx'), l.bytes);
    const img = await openImage('4k.vhdx', { storeRoot: store });
    try {
      assert.equal(img.logicalSectorSize, 4096);
      assert.ok((await img.read(0, img.size)).equals(disk4k));
      const table = await readPartitionTable(img);
      assert.equal(table.sectorSize, 4096);
      assert.deepEqual(table.partitions.map((p) => [p.number, p.start, p.size]), [[1, MiB, 2 * MiB]]);
    } finally {
      await img.close();
    }
  });
});
