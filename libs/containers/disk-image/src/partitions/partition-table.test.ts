import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { bufferSource, openImage, readPartitionTable, sliceSource, type Partition } from '../index';
import { rejectsWith, run, tempDir } from '../fixtures';

let dir: string;
let cleanup: () => void;

before(() => {
  ({ dir, cleanup } = tempDir('partitions'));
  dir = realpathSync(dir);
});
after(() => cleanup());

interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  name?: string;
}
interface SfdiskTable {
  partitiontable: { label: string; sectorsize: number; partitions: SfdiskPartition[] };
}

function makeDisk(name: string, bytes: number, script: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, Buffer.alloc(0));
  run('truncate', ['-s', String(bytes), file]);
  run('sfdisk', ['-q', file], script);
  return file;
}

function sfdiskJson(device: string): SfdiskTable {
  return JSON.parse(run('sfdisk', ['--json', device])) as SfdiskTable;
}

/** Our table in sfdisk's terms: node number, start and size in sectors, type as sfdisk prints it. */
function asSfdisk(parts: Partition[], sectorSize: number): { n: number; start: number; size: number; type: string; name: string }[] {
  return parts.map((p) => ({
    n: p.number,
    start: p.start / sectorSize,
    size: p.size / sectorSize,
    type: typeof p.type === 'number' ? p.type.toString(16) : p.type.toUpperCase(),
    name: p.name,
  }));
}

function sfdiskParts(t: SfdiskTable): { n: number; start: number; size: number; type: string; name: string }[] {
  return t.partitiontable.partitions.map((p) => ({
    n: Number(/(\d+)$/.exec(p.node)?.[1]),
    start: p.start,
    size: p.size,
    type: p.type,
    name: p.name ?? '',
  }));
}

function spans(parts: Partition[]): Span[] {
  return parts.map((p) => ({ n: p.number, start: p.start, size: p.size }));
}

async function tableOf(file: string) {
  const img = await openImage(path.basename(file), { storeRoot: dir });
  try {
    return await readPartitionTable(img);
  } finally {
    await img.close();
  }
}

type Span = { n: number; start: number; size: number };

/**
 * Compares with the kernel's view of the same disk (a read-only loop device
 * with a partition scan), when the running kernel parses partition tables at
 * all: minimal VM kernels are built without them, and then sfdisk is the only
 * reference.
 */
function assertKernelAgrees(t: TestContext, file: string, ours: Span[], blockSize = 512, skip?: (p: Span) => boolean): void {
  const kernel = kernelPartitions(file, blockSize);
  if (kernel.length === 0) {
    t.diagnostic('this kernel found no partitions (no partition table support?): compared with sfdisk only');
    return;
  }
  const keep = (p: Span): boolean => !skip?.(p);
  assert.deepEqual(ours.filter(keep), kernel.filter(keep));
}

function kernelPartitions(file: string, blockSize: number): Span[] {
  const dev = run('losetup', ['-r', '-P', '-b', String(blockSize), '-f', '--show', file]).trim();
  try {
    run('udevadm', ['settle']).toString();
  } catch {
    // No udev in the container: sysfs is populated by the kernel regardless.
  }
  try {
    const name = path.basename(dev);
    const sys = `/sys/class/block/${name}`;
    return readdirSync(sys)
      .filter((e) => e.startsWith(`${name}p`) && existsSync(path.join(sys, e, 'partition')))
      .map((e) => ({
        n: Number(readFileSync(path.join(sys, e, 'partition'), 'utf8')),
        start: Number(readFileSync(path.join(sys, e, 'start'), 'utf8')) * 512,
        size: Number(readFileSync(path.join(sys, e, 'size'), 'utf8')) * 512,
      }))
      .sort((a, b) => a.n - b.n);
  } finally {
    run('losetup', ['-d', dev]);
  }
}

const GPT_SCRIPT = (name: string): string =>
  [
    'label: gpt',
    'first-lba: 2048',
    `${name}1 : start=2048, size=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root fs"`,
    `${name}3 : start=4096, size=4096, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name="swap"`,
    `${name}7 : start=8192, size=2048, type=933AC7E1-2EB4-4F13-B844-0E14E2AEF915, name="hömé"`,
    `${name}8 : start=10240, size=2048, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root-x86-64"`,
    '',
  ].join('\n');

describe('GPT', () => {
  test('slot numbers with gaps, types, names, as sfdisk and the kernel see them', async (t) => {
    const file = makeDisk('gpt.img', 8 * 1024 * 1024, GPT_SCRIPT('gpt.img'));
    const table = await tableOf(file);
    assert.equal(table.scheme, 'gpt');
    assert.equal(table.sectorSize, 512);
    assert.deepEqual(table.warnings, []);
    assert.deepEqual(asSfdisk(table.partitions, 512), sfdiskParts(sfdiskJson(file)));
    assert.deepEqual(table.partitions.map((p) => [p.number, p.linuxFilesystem]), [
      [1, true],
      [3, false],
      [7, true],
      [8, true],
    ]);
    assertKernelAgrees(t, file, spans(table.partitions));
  });

  test('a zeroed primary header: the backup is used, with a warning', async () => {
    const file = makeDisk('gpt-backup.img', 8 * 1024 * 1024, GPT_SCRIPT('gpt-backup.img'));
    const good = await tableOf(file);
    const bytes = readFileSync(file);
    bytes.fill(0, 512, 1024);
    writeFileSync(file, bytes);
    const table = await tableOf(file);
    assert.deepEqual(table.partitions, good.partitions);
    assert.equal(table.warnings.length, 1);
    assert.match(table.warnings[0], /primary GPT header unusable.*used the backup header/);
  });

  test('a primary entry array CRC mismatch: the backup is used; both bad: EIO', async () => {
    const file = makeDisk('gpt-crc.img', 8 * 1024 * 1024, GPT_SCRIPT('gpt-crc.img'));
    const good = await tableOf(file);
    const bytes = readFileSync(file);
    bytes[1024 + 56] ^= 0xff; // a name byte of entry 1 in the primary array
    const table = await readPartitionTable(bufferSource(bytes));
    assert.deepEqual(table.partitions, good.partitions);
    assert.match(table.warnings.join('\n'), /entry array CRC mismatch.*used the backup/);
    bytes[bytes.length - 512 + 8] ^= 0xff; // the backup header's revision
    await rejectsWith(readPartitionTable(bufferSource(bytes)), 'EIO', /no usable GPT header.*header CRC mismatch/);
  });

  test('4096-byte sectors (GPT written through a 4K loop device)', async (t) => {
    const file = path.join(dir, 'gpt4k.img');
    run('truncate', ['-s', String(16 * 1024 * 1024), file]);
    const dev = run('losetup', ['-b', '4096', '-f', '--show', file]).trim();
    let expected: SfdiskTable;
    try {
      run('sfdisk', ['-q', dev], ['label: gpt', 'size=1024, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="data"', 'size=512, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F', ''].join('\n'));
      expected = sfdiskJson(dev);
    } finally {
      run('losetup', ['-d', dev]);
    }
    assert.equal(expected.partitiontable.sectorsize, 4096);
    const table = await tableOf(file);
    assert.equal(table.sectorSize, 4096);
    assert.deepEqual(table.warnings, []);
    assert.deepEqual(asSfdisk(table.partitions, 4096), sfdiskParts(expected));
    assertKernelAgrees(t, file, spans(table.partitions), 4096);
  });
});

describe('MBR', () => {
  test('primaries and an extended partition with three logicals, as sfdisk and the kernel see them', async (t) => {
    const file = makeDisk(
      'mbr.img',
      32 * 1024 * 1024,
      [
        'label: dos',
        'mbr.img1 : start=2048, size=2048, type=83',
        'mbr.img2 : start=4096, size=40960, type=5',
        'mbr.img3 : start=45056, size=2048, type=c',
        'mbr.img5 : size=2048, type=83',
        'mbr.img6 : size=4096, type=82',
        'mbr.img7 : size=2048, type=83',
        '',
      ].join('\n'),
    );
    const table = await tableOf(file);
    assert.equal(table.scheme, 'mbr');
    assert.deepEqual(table.warnings, []);
    assert.deepEqual(asSfdisk(table.partitions, 512), sfdiskParts(sfdiskJson(file)));
    assert.deepEqual(table.partitions.map((p) => [p.number, p.type, p.linuxFilesystem]), [
      [1, 0x83, true],
      [2, 0x05, false],
      [3, 0x0c, false],
      [5, 0x83, true],
      [6, 0x82, false],
      [7, 0x83, true],
    ]);
    // The kernel exposes an extended partition as a stub of a sector or two; compare the rest.
    assertKernelAgrees(t, file, spans(table.partitions), 512, (p) => p.n === 2);
  });

  test('an EBR chain that loops ends with a warning', async () => {
    const disk = Buffer.alloc(4 * 1024 * 1024);
    const entry = (sector: Buffer, i: number, type: number, start: number, sectors: number): void => {
      const at = 446 + i * 16;
      sector[at + 4] = type;
      sector.writeUInt32LE(start, at + 8);
      sector.writeUInt32LE(sectors, at + 12);
    };
    const sig = (lba: number): void => {
      disk[lba * 512 + 510] = 0x55;
      disk[lba * 512 + 511] = 0xaa;
    };
    entry(disk, 0, 0x0f, 2048, 4096);
    sig(0);
    const ebr = (lba: number, next: number): void => {
      const s = disk.subarray(lba * 512, lba * 512 + 512);
      entry(s, 0, 0x83, 1, 100);
      entry(s, 1, 0x05, next - 2048, 200);
      sig(lba);
    };
    ebr(2048, 2248);
    ebr(2248, 2048); // back to the first
    const table = await readPartitionTable(bufferSource(disk));
    assert.deepEqual(table.partitions.map((p) => [p.number, p.start / 512]), [
      [1, 2048],
      [5, 2049],
      [6, 2249],
    ]);
    assert.match(table.warnings.join('\n'), /loops back to LBA 2048/);
  });

  test('4096-byte logical sectors: LBAs count in 4 KiB, EBR links too (MBR written through a 4K loop device)', async (t) => {
    const file = path.join(dir, 'mbr4k.img');
    run('truncate', ['-s', String(64 * 1024 * 1024), file]);
    const dev = run('losetup', ['-b', '4096', '-f', '--show', file]).trim();
    let expected: SfdiskTable;
    try {
      run('sfdisk', ['-q', dev], ['label: dos', 'size=1024, type=83', 'type=5', 'size=512, type=83', 'size=768, type=82', ''].join('\n'));
      expected = sfdiskJson(dev);
    } finally {
      run('losetup', ['-d', dev]);
    }
    assert.equal(expected.partitiontable.sectorsize, 4096);
    const bytes = readFileSync(file);
    // As the format reports it (a 4Kn VHDX), and as asked.
    const fourK = { ...bufferSource(bytes), logicalSectorSize: 4096 };
    for (const table of [await readPartitionTable(fourK), await readPartitionTable(bufferSource(bytes), { sectorSize: 4096 })]) {
      assert.equal(table.scheme, 'mbr');
      assert.equal(table.sectorSize, 4096);
      assert.deepEqual(table.warnings, []);
      assert.deepEqual(asSfdisk(table.partitions, 4096), sfdiskParts(expected));
    }
    const table = await readPartitionTable(fourK);
    assertKernelAgrees(t, file, spans(table.partitions), 4096, (p) => p.n === 2);
    await rejectsWith(readPartitionTable(bufferSource(bytes), { sectorSize: 1024 }), 'EINVAL', /512 and 4096/);
  });

  test('boot code without partitions (GRUB on a disk whose table was emptied) is a warning, not a missing table', async () => {
    const disk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 440; i++) disk[i] = (i * 37 + 11) & 0xff;
    disk[510] = 0x55;
    disk[511] = 0xaa;
    const table = await readPartitionTable(bufferSource(disk));
    assert.equal(table.scheme, 'mbr');
    assert.deepEqual(table.partitions, []);
    assert.deepEqual(table.warnings, ['MBR boot code without partitions']);
    disk.fill(0, 0, 440);
    assert.deepEqual((await readPartitionTable(bufferSource(disk))).warnings, ['an empty MBR partition table']);
  });

  test('partitions past the end of the disk are skipped or truncated', async () => {
    const disk = Buffer.alloc(1024 * 1024);
    disk[446 + 4] = 0x83;
    disk.writeUInt32LE(100, 446 + 8);
    disk.writeUInt32LE(1 << 20, 446 + 12);
    disk[462 + 4] = 0x83;
    disk.writeUInt32LE(1 << 30, 462 + 8);
    disk.writeUInt32LE(10, 462 + 12);
    disk[510] = 0x55;
    disk[511] = 0xaa;
    const table = await readPartitionTable(bufferSource(disk));
    assert.deepEqual(table.partitions.map((p) => [p.number, p.start, p.size]), [[1, 51200, 1024 * 1024 - 51200]]);
    assert.equal(table.warnings.length, 2);
  });
});

describe('no partition table', () => {
  test('zeros, a bare filesystem, a tiny disk', async () => {
    assert.equal((await readPartitionTable(bufferSource(Buffer.alloc(1 << 20)))).scheme, 'none');
    assert.equal((await readPartitionTable(bufferSource(Buffer.alloc(100)))).scheme, 'none');
    const fs = path.join(dir, 'ext4.img');
    run('truncate', ['-s', '8M', fs]);
    run('mke2fs', ['-q', '-F', '-t', 'ext4', fs]);
    const table = await tableOf(fs);
    assert.deepEqual(table, { scheme: 'none', sectorSize: 512, partitions: [], warnings: [] });
  });
});

describe('sliceSource', () => {
  test('reads a window and checks its bounds', async () => {
    const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    const slice = sliceSource(bufferSource(bytes), 100, 500);
    assert.equal(slice.size, 500);
    assert.deepEqual(await slice.read(10, 20), bytes.subarray(110, 130));
    await rejectsWith(slice.read(490, 11), 'EIO', /past the end/);
    assert.throws(() => sliceSource(bufferSource(bytes), 600, 401), /does not fit/);
  });
});
