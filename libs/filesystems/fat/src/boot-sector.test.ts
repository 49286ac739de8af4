import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StrataError } from '@strata/errors';
import { parseBootSector } from './boot-sector';

function fat16Boot(): Buffer {
  const b = Buffer.alloc(512);
  b.set([0xeb, 0x3c, 0x90], 0);
  b.write('MSWIN4.1', 3, 'latin1');
  b.writeUInt16LE(512, 11);
  b[13] = 4;
  b.writeUInt16LE(4, 14);
  b[16] = 2;
  b.writeUInt16LE(512, 17);
  b.writeUInt16LE(0, 19);
  b[21] = 0xf8;
  b.writeUInt16LE(64, 22);
  b.writeUInt32LE(65536, 32);
  b[38] = 0x29;
  b.writeUInt32LE(0x1234abcd, 39);
  b.write('MY DISK    ', 43, 'latin1');
  b.write('FAT16   ', 54, 'latin1');
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

const errno = (e: unknown): number | undefined => (e instanceof StrataError ? e.errno : undefined);

test('geometry of a FAT16 boot sector', () => {
  const g = parseBootSector(fat16Boot());
  assert.equal(g.fatBits, 16);
  assert.equal(g.clusterSize, 2048);
  assert.equal(g.fatOffset, 4 * 512);
  assert.equal(g.rootDirOffset, (4 + 128) * 512);
  assert.equal(g.dataOffset, (4 + 128 + 32) * 512);
  assert.equal(g.maxCluster, Math.floor((65536 - 164) / 4) + 2);
  assert.equal(g.serial, '1234-ABCD');
  assert.equal(g.bootLabel, 'MY DISK');
});

test('FAT12 when the clusters fit 0xff6, as the kernel decides', () => {
  const b = fat16Boot();
  b.writeUInt32LE(0, 32);
  b.writeUInt16LE(4086 * 4 + 164, 19);
  assert.equal(parseBootSector(b).fatBits, 12);
  b.writeUInt16LE(4087 * 4 + 164, 19);
  assert.equal(parseBootSector(b).fatBits, 16);
});

test('bad fields are EUCLEAN naming the field; garbage is EINVAL; exFAT is EOPNOTSUPP', () => {
  const cases: [string, (b: Buffer) => void, RegExp][] = [
    ['reserved', (b) => b.writeUInt16LE(0, 14), /reserved/],
    ['fats', (b) => (b[16] = 0), /FAT structures/],
    ['media', (b) => (b[21] = 0x12), /media/],
    ['sector size', (b) => b.writeUInt16LE(1000, 11), /sector size/],
    ['cluster', (b) => (b[13] = 3), /sectors per cluster/],
    ['fat length', (b) => (b.writeUInt16LE(0, 22), b.writeUInt32LE(0, 36)), /FAT sectors/],
    ['root entries', (b) => b.writeUInt16LE(17, 17), /directory entries/],
    ['total', (b) => b.writeUInt32LE(100, 32), /data area/],
  ];
  for (const [what, mutate, message] of cases) {
    const b = fat16Boot();
    mutate(b);
    assert.throws(() => parseBootSector(b), (e: unknown) => errno(e) === 117 && message.test((e as Error).message), what);
  }
  assert.throws(() => parseBootSector(Buffer.alloc(512)), (e: unknown) => errno(e) === 22);
  const ex = Buffer.alloc(512);
  ex.write('EXFAT   ', 3, 'latin1');
  assert.throws(() => parseBootSector(ex), (e: unknown) => errno(e) === 95 && /exFAT is not supported/.test((e as Error).message));
});
