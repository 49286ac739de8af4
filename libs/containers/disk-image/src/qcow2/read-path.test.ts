import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import * as path from 'node:path';
import { openImage } from '../index';
import { sliceSource } from '../byte-source';
import { qemuImg, qemuIo, qemuTruth, rejectsWith, tempDir } from '../fixtures';

let store: string;
let cleanup: () => void;

before(() => {
  ({ dir: store, cleanup } = tempDir('qcow2-read-path'));
  store = realpathSync(store);
});
after(() => cleanup());

const at = (name: string): string => path.join(store, name);
const MiB = 1024 * 1024;

/** A base written whole and a snapshot over it owning a few scattered ranges: reads cross both files. */
function makeChain(): void {
  qemuImg('create', '-q', '-f', 'qcow2', at('base.qcow2'), '8M');
  qemuIo(at('base.qcow2'), 'write -P 0x5e 0 8M');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', at('top.qcow2'));
  qemuIo(at('top.qcow2'), 'write -P 0x61 64k 64k', 'write -P 0x62 320k 192k', 'write -P 0x63 1000k 5000', 'write -P 0x64 3M 1M');
}

describe('qcow2 read path', () => {
  before(() => makeChain());

  test('readInto gives what read() and qemu give, into any place of the caller buffer, and through a partition slice', async () => {
    const truth = qemuTruth(at('top.qcow2'), store);
    const img = await openImage('top.qcow2', { storeRoot: store });
    try {
      for (const [offset, length] of [[0, 8 * MiB], [65535, 3], [60000, 500000], [3 * MiB - 7, MiB + 14], [8 * MiB - 1, 1]] as const) {
        const target = Buffer.alloc(length + 20, 0xee);
        await img.readInto(target, 10, offset, length);
        assert.ok(target.subarray(10, 10 + length).equals(truth.subarray(offset, offset + length)), `${offset}+${length}`);
        assert.ok(target.subarray(0, 10).every((b) => b === 0xee) && target.subarray(10 + length).every((b) => b === 0xee), 'nothing written outside the range');
        assert.ok((await img.read(offset, length)).equals(target.subarray(10, 10 + length)));
      }
      const part = sliceSource(img, MiB, 4 * MiB);
      assert.ok(part.readInto, 'a slice of an image reads into buffers');
      const got = Buffer.alloc(300000);
      await part.readInto(got, 0, 123456, got.length);
      assert.ok(got.equals(truth.subarray(MiB + 123456, MiB + 123456 + got.length)));
      await rejectsWith(part.readInto(got, 0, 4 * MiB - 10, 11), 'EIO', /past the end/);
      await rejectsWith(img.readInto(got, got.length - 5, 0, 6), 'EINVAL', /do not fit/);
    } finally {
      await img.close();
    }
  });

  test('a read across both files issues one pread per contiguous run of file bytes (as mapRange names them)', async () => {
    const img = await openImage('top.qcow2', { storeRoot: store });
    try {
      await img.read(0, 4096); // L1 pieces and L2 tables of both files
      await img.read(4 * MiB + 4096, 4096);
      for (const [offset, length] of [[0, 2 * MiB], [100000, 300000], [2 * MiB, 2 * MiB + 12345], [5 * MiB, MiB]] as const) {
        const runs = (await img.mapRange(offset, length)).filter((r) => r.kind === 'data');
        const before = img.stats.fileReads;
        await img.read(offset, length);
        assert.equal(img.stats.fileReads - before, runs.length, `${offset}+${length}: ${runs.length} runs`);
      }
    } finally {
      await img.close();
    }
  });

  test('reads within one L2 table look nothing up again (no L1 or metadata cache lookups after the first)', async () => {
    const img = await openImage('base.qcow2', { storeRoot: store });
    try {
      await img.read(0, 4096);
      const hits = img.stats.metadataCacheHits;
      const misses = img.stats.metadataCacheMisses;
      for (let i = 1; i < 20; i++) assert.ok((await img.read(i * 300000, 4096)).every((b) => b === 0x5e));
      assert.equal(img.stats.metadataCacheHits, hits);
      assert.equal(img.stats.metadataCacheMisses, misses);
    } finally {
      await img.close();
    }
  });
});
