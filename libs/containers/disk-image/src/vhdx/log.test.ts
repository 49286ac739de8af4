import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { openImage } from '../index';
import { prng, qemuImg, rejectsWith, sha256, tempDir } from '../fixtures';
import { batOffset, logEntry, setLogGuid } from './log-fixture';

/**
 * A VHDX closed with writes still in its log: entries written here as the
 * specification lays them out (MS-VHDX 2.3), the truth being qemu's own
 * replay (`qemu-img check -r all` on a copy, which writes the log into the
 * file, then `qemu-img convert`). Ours replays in memory and never writes.
 */

let store: string;
let cleanup: () => void;
const MiB = 1024 * 1024;
const SECTOR = 4096;
const at = (name: string): string => path.join(store, name);

before(() => {
  ({ dir: store, cleanup } = tempDir('vhdx-log'));
  store = realpathSync(store);
});
after(() => cleanup());

describe('VHDX log replay', () => {
  test('the active sequence is replayed in memory as qemu replays it; a stale entry is not; the file is not written', async () => {
    const rnd = prng(21);
    const raw = Buffer.alloc(4 * MiB);
    for (let i = 0; i < 2 * MiB; i++) raw[i] = Math.floor(rnd() * 256);
    writeFileSync(at('src.raw'), raw);
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', at('src.raw'), at('log.vhdx'));
    const b = readFileSync(at('log.vhdx'));
    const header = 64 * 1024;
    const logOffset = Number(b.readBigUInt64LE(header + 72));
    const logLength = b.readUInt32LE(header + 68);
    assert.ok(logOffset >= MiB && logLength >= MiB, `log at ${logOffset}, ${logLength} bytes`);
    const bat = batOffset(b);
    const block0 = Number(b.readBigUInt64LE(bat) >> 20n) * MiB;
    const newBlock = Math.ceil(b.length / MiB) * MiB;
    const batSector = Buffer.from(b.subarray(bat, bat + SECTOR));
    batSector.writeBigUInt64LE((BigInt(newBlock / MiB) << 20n) | 6n, 2 * 8);
    const guid = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
    const fill = (v: number): Buffer => Buffer.alloc(SECTOR, v);
    const first = logEntry(5n, guid, [
      { kind: 'desc', fileOffset: bat, data: batSector },
      { kind: 'desc', fileOffset: newBlock, data: fill(0xc3) },
      { kind: 'desc', fileOffset: newBlock + 2 * SECTOR, data: fill(0x3c) },
      { kind: 'zero', fileOffset: block0 + 3 * SECTOR, zeroLength: 2 * SECTOR },
    ], b.length, newBlock + MiB - SECTOR, 0);
    const second = logEntry(6n, guid, [{ kind: 'desc', fileOffset: newBlock, data: fill(0xd4) }], b.length, newBlock + MiB - SECTOR, 0);
    const stale = logEntry(3n, guid, [{ kind: 'desc', fileOffset: newBlock + SECTOR, data: fill(0xee) }], b.length, newBlock + MiB - SECTOR, 0);
    first.copy(b, logOffset + 2 * SECTOR);
    second.copy(b, logOffset + 2 * SECTOR + first.length);
    stale.copy(b, logOffset + 100 * SECTOR);
    setLogGuid(b, guid);
    writeFileSync(at('log.vhdx'), b);
    const before = sha256(b);

    copyFileSync(at('log.vhdx'), at('replayed-by-qemu.vhdx'));
    qemuImg('check', '-q', '-r', 'all', at('replayed-by-qemu.vhdx'));
    qemuImg('convert', '-f', 'vhdx', '-O', 'raw', at('replayed-by-qemu.vhdx'), at('truth.raw'));
    const truth = readFileSync(at('truth.raw'));
    // The replay did something: the new block and the zeroed sectors.
    assert.ok(truth.subarray(2 * MiB, 2 * MiB + SECTOR).every((x) => x === 0xd4));
    assert.ok(truth.subarray(3 * SECTOR, 5 * SECTOR).every((x) => x === 0));

    const img = await openImage('log.vhdx', { storeRoot: store });
    try {
      assert.equal(sha256(await img.read(0, img.size)), sha256(truth));
      assert.deepEqual(await img.ownRanges(), [{ offset: 0, length: 3 * MiB }]);
    } finally {
      await img.close();
    }
    assert.equal(sha256(readFileSync(at('log.vhdx'))), before, 'the file is never written');
  });

  test('a log GUID over a log without valid entries reads as it stands (as qemu); a truncated file is refused', async () => {
    writeFileSync(at('small.raw'), Buffer.alloc(2 * MiB, 7));
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'vhdx', '-o', 'block_size=1M', at('small.raw'), at('empty-log.vhdx'));
    const b = readFileSync(at('empty-log.vhdx'));
    const guid = Buffer.alloc(16, 0x5a);
    setLogGuid(b, guid);
    writeFileSync(at('empty-log.vhdx'), b);
    const img = await openImage('empty-log.vhdx', { storeRoot: store });
    try {
      assert.ok((await img.read(0, img.size)).equals(readFileSync(at('small.raw'))));
    } finally {
      await img.close();
    }
    const logOffset = Number(b.readBigUInt64LE(64 * 1024 + 72));
    logEntry(9n, guid, [{ kind: 'desc', fileOffset: 2 * MiB, data: Buffer.alloc(SECTOR, 1) }], b.length + MiB, b.length, 0).copy(b, logOffset);
    writeFileSync(at('truncated.vhdx'), b);
    await rejectsWith(openImage('truncated.vhdx', { storeRoot: store }), 'EIO', /truncated/);
  });
});
