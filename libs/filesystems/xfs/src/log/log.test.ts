/**
 * Log recovery pieces on hand-built bytes: operations reassembled into
 * committed transactions (split regions, uncommitted ones dropped), the
 * sector overlay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, isStrataError } from '@strata/errors';
import { crcMatches } from '../checksum';
import type { Superblock } from '../superblock';
import { ViewReader, replayLog } from './log-replay';
import { LogItem, committedTransactions } from './log-transactions';
import type { LogRecord } from './log-records';
import { SectorOverlay } from './sector-overlay';

function op(tid: number, flags: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt32BE(tid, 0);
  h.writeUInt32BE(body.length, 4);
  h[8] = 0x69;
  h[9] = flags;
  return Buffer.concat([h, body]);
}

function record(lsn: bigint, ops: Buffer[]): LogRecord {
  return { lsn, block: Number(lsn & 0xffffffffn), numOps: ops.length, data: Buffer.concat(ops) };
}

const transHeader = (): Buffer => {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(0x5452414e, 0);
  b.writeUInt32LE(40, 4);
  b.writeUInt32LE(2, 12);
  return b;
};

function format(type: number, regions: number, extra = 20): Buffer {
  const b = Buffer.alloc(4 + extra);
  b.writeUInt16LE(type, 0);
  b.writeUInt16LE(regions, 2);
  return b;
}

test('operations become committed transactions; split regions are joined; uncommitted ones are dropped', () => {
  const START = 0x01;
  const COMMIT = 0x02;
  const CONTINUE = 0x04;
  const WAS_CONT = 0x08;
  const END = 0x10;
  const part1 = Buffer.alloc(300, 1);
  const part2 = Buffer.alloc(200, 2);
  const records = [
    record(0x1_0000_0010n, [op(7, START), op(7, 0, transHeader()), op(7, 0, format(0x123c, 2)), op(7, CONTINUE, part1), op(9, START), op(9, 0, transHeader())]),
    record(0x1_0000_0020n, [op(7, WAS_CONT | END, part2), op(7, 0, format(0x123f, 1)), op(7, COMMIT)]),
  ];
  const transactions = committedTransactions(records);
  assert.equal(transactions.length, 1);
  const [t] = transactions;
  assert.equal(t.lsn, 0x1_0000_0010n);
  assert.equal(t.items.length, 2);
  assert.equal(t.items[0].regions.length, 2);
  assert.ok(t.items[0].regions[1].equals(Buffer.concat([part1, part2])));
  assert.equal(t.items[1].regions[0].readUInt16LE(0), 0x123f);
  assert.throws(() => committedTransactions([record(1n, [op(3, START), op(3, 0, Buffer.from('NOTAHEADER000000'))])]), /transaction header magic/);
  const bad = record(1n, [op(3, START)]);
  bad.data[8] = 0x11;
  assert.throws(() => committedTransactions([bad]), /client/);
});

test('the sector overlay patches reads without touching the source buffer', () => {
  const overlay = new SectorOverlay();
  overlay.write(1024, Buffer.alloc(1024, 7));
  const source = Buffer.alloc(4096, 1);
  const patched = overlay.patch(512, source.subarray(512, 3072));
  assert.ok(source.equals(Buffer.alloc(4096, 1)));
  assert.ok(patched.subarray(0, 512).equals(Buffer.alloc(512, 1)));
  assert.ok(patched.subarray(512, 1536).equals(Buffer.alloc(1024, 7)));
  assert.ok(patched.subarray(1536).equals(Buffer.alloc(1024, 1)));
  const untouched = source.subarray(2048, 4096);
  assert.equal(overlay.patch(2048, untouched), untouched);
  // A read starting inside a replayed sector gets its tail.
  assert.ok(overlay.patch(1300, Buffer.alloc(100, 1)).equals(Buffer.alloc(100, 7)));
});

function sbFor(): Superblock {
  return {
    blockSize: 4096, blockLog: 12, dblocks: 4 * 16384, rblocks: 0, uuid: Buffer.alloc(16, 7), metaUuid: Buffer.alloc(16, 7),
    logStart: 8192, rootIno: 128, agBlocks: 16384, agCount: 4, logBlocks: 1000, versionNum: 0xb4a5, sectSize: 512,
    inodeSize: 512, inodesPerBlock: 8, label: '', inodeLog: 9, inopbLog: 3, agBlkLog: 14, imaxPct: 25, icount: 64, inoAlignMt: 4,
    ifree: 60, fdblocks: 1000, dirBlkLog: 0, features2: 0, incompat: 0x9, roCompat: 0, logIncompat: 0, crc: true,
    ftype: true, hasNlink: true,
  };
}

function intent(type: number, id: bigint, extents: [bigint, number][] = []): LogItem {
  const f = Buffer.alloc(16 + extents.length * 16);
  f.writeUInt16LE(type, 0);
  f.writeUInt16LE(1, 2);
  f.writeUInt32LE(extents.length, 4);
  f.writeBigUInt64LE(id, 8);
  extents.forEach(([start, len], i) => {
    f.writeBigUInt64LE(start, 16 + i * 16);
    f.writeUInt32LE(len, 24 + i * 16);
  });
  return { regions: [f], total: 1 };
}

const zeros: ViewReader = (_offset, length) => Promise.resolve(Buffer.alloc(length));

test('intents: finished ones pair with their done items; unfinished extent frees are counted; unfinished bmap updates are refused', async () => {
  const sb = sbFor();
  const done = await replayLog(sb, [{ lsn: 1n, items: [intent(0x1236, 5n, [[100n, 8]]), intent(0x1237, 5n)] }], zeros, new SectorOverlay(), 1 << 30);
  assert.deepEqual([done.pendingFreeBlocks, done.pendingIntents], [0, []]);
  const pending = await replayLog(sb, [{ lsn: 1n, items: [intent(0x1236, 6n, [[100n, 8], [300n, 2]]), intent(0x1242, 7n)] }], zeros, new SectorOverlay(), 1 << 30);
  assert.deepEqual([pending.pendingFreeBlocks, pending.pendingIntents], [10, ['extent free', 'refcount']]);
  await assert.rejects(replayLog(sb, [{ lsn: 1n, items: [intent(0x1244, 8n)] }], zeros, new SectorOverlay(), 1 << 30), (err) => isStrataError(err) && err.errno === Errno.EOPNOTSUPP && /bmap/.test(err.message));
  await assert.rejects(replayLog(sb, [{ lsn: 1n, items: [intent(0x1299, 8n)] }], zeros, new SectorOverlay(), 1 << 30), (err) => isStrataError(err) && err.errno === Errno.EUCLEAN);
});

test('buffer items: dirty 128-byte chunks copied in, CRC recomputed, cancelled buffers skipped, newer blocks on disk kept', async () => {
  const sb = sbFor();
  const format = (flags: number, blkno: bigint, map: number): Buffer => {
    const f = Buffer.alloc(24);
    f.writeUInt16LE(0x123c, 0);
    f.writeUInt16LE(2, 2);
    f.writeUInt16LE(flags, 4);
    f.writeUInt16LE(8, 6);
    f.writeBigInt64LE(blkno, 8);
    f.writeUInt32LE(1, 16);
    f.writeUInt32LE(map, 20);
    return f;
  };
  // A directory data block header in chunk 0 (magic, uuid, owner), logged with the LSN of its transaction.
  const chunk = Buffer.alloc(256);
  chunk.writeUInt32BE(0x58444433, 0);
  sb.metaUuid.copy(chunk, 24);
  const overlay = new SectorOverlay();
  await replayLog(sb, [{ lsn: 0x1_0000_0100n, items: [{ regions: [format(0, 800n, 0b11), chunk], total: 2 }] }], zeros, overlay, 1 << 30);
  const block = overlay.patch(800 * 512, Buffer.alloc(4096));
  assert.equal(block.readUInt32BE(0), 0x58444433);
  assert.ok(crcMatches(block, 0, 4096, 4));
  // The same block, cancelled later in the log: not replayed.
  const cancelled = new SectorOverlay();
  await replayLog(sb, [
    { lsn: 1n, items: [{ regions: [format(0, 800n, 1), chunk.subarray(0, 128)], total: 2 }] },
    { lsn: 2n, items: [{ regions: [format(0x2, 800n, 0)], total: 1 }] },
  ], zeros, cancelled, 1 << 30);
  assert.equal(cancelled.size, 0);
  // On disk already written by a later transaction (its LSN is newer): kept.
  const newer: ViewReader = (_o, length) => {
    const b = Buffer.alloc(length);
    chunk.copy(b);
    b.writeBigUInt64BE(0x1_0000_0200n, 16);
    return Promise.resolve(b);
  };
  const kept = new SectorOverlay();
  await replayLog(sb, [{ lsn: 0x1_0000_0100n, items: [{ regions: [format(0, 800n, 1), Buffer.alloc(128, 9)], total: 2 }] }], newer, kept, 1 << 30);
  assert.equal(kept.size, 0);
});
