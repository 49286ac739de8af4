import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StrataError } from '@strata/errors';
import type { Geometry } from './boot-sector';
import { walkChain } from './cluster-chain';
import { decodeEntry, FAT_EOF, FatTable } from './fat-table';

test('FAT12 entries pack two in three bytes', () => {
  // Entries 2..5 = 0x003, 0xABC, 0xFFF, 0x123.
  const values = [0xff8, 0xfff, 0x003, 0xabc, 0xfff, 0x123];
  const fat = Buffer.alloc(9);
  for (let n = 0; n < values.length; n++) {
    const off = n + (n >> 1);
    const v = values[n] ?? 0;
    if (n & 1) {
      fat[off] = ((fat[off] ?? 0) & 0x0f) | ((v & 0x0f) << 4);
      fat[off + 1] = v >> 4;
    } else {
      fat[off] = v & 0xff;
      fat[off + 1] = ((fat[off + 1] ?? 0) & 0xf0) | (v >> 8);
    }
  }
  assert.equal(decodeEntry(fat, 12, 2), 3);
  assert.equal(decodeEntry(fat, 12, 3), 0xabc);
  assert.equal(decodeEntry(fat, 12, 4), FAT_EOF);
  assert.equal(decodeEntry(fat, 12, 5), 0x123);
  // 0xff7 (bad cluster) and up read as end of chain, as fat12_ent_get.
  assert.equal(decodeEntry(Buffer.from([0xf7, 0x0f, 0x00]), 12, 0), FAT_EOF);
  assert.equal(decodeEntry(Buffer.from([0xf6, 0x0f, 0x00]), 12, 0), 0xff6);
});

test('FAT16 and FAT32 entries; FAT32 ignores the top four bits', () => {
  const f16 = Buffer.alloc(8);
  f16.writeUInt16LE(0xfff7, 4);
  f16.writeUInt16LE(0x1234, 6);
  assert.equal(decodeEntry(f16, 16, 2), FAT_EOF);
  assert.equal(decodeEntry(f16, 16, 3), 0x1234);
  const f32 = Buffer.alloc(16);
  f32.writeUInt32LE(0xf0000005, 8);
  f32.writeUInt32LE(0x0ffffff8, 12);
  assert.equal(decodeEntry(f32, 32, 2), 5);
  assert.equal(decodeEntry(f32, 32, 3), FAT_EOF);
});

function fat16Table(links: Record<number, number>, maxCluster: number): FatTable {
  const fat = Buffer.alloc(maxCluster * 2);
  for (const [k, v] of Object.entries(links)) fat.writeUInt16LE(v, Number(k) * 2);
  const geo = { fatBits: 16, fatOffset: 0, fatBytes: fat.length, maxCluster } as Geometry;
  return new FatTable({ size: fat.length, read: async (o, l) => fat.subarray(o, o + l) }, geo, 1 << 20);
}

test('chains become runs; loops, free links and wild pointers are EUCLEAN', async () => {
  const t = fat16Table({ 2: 3, 3: 4, 4: 9, 9: 10, 10: 0xffff, 20: 21, 21: 22, 22: 20, 30: 0, 31: 500, 40: 40 }, 64);
  const chain = await walkChain(t, 2, 100, 64, 'f');
  assert.deepEqual(chain.runs.map((r) => [r.cluster, r.count]), [[2, 3], [9, 2]]);
  assert.equal(chain.ended, true);
  const limited = await walkChain(t, 2, 2, 64, 'f');
  assert.equal(limited.length, 2);
  assert.equal(limited.ended, false);
  for (const start of [20, 30, 31, 40, 1, 64]) {
    await assert.rejects(walkChain(t, start, 1000, 64, 'f'), (e: unknown) => e instanceof StrataError && e.errno === 117);
  }
});
