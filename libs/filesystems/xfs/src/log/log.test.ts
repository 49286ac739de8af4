/**
 * Log recovery pieces on hand-built bytes: operations reassembled into
 * committed transactions (split regions, uncommitted ones dropped), the
 * sector overlay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { committedTransactions } from './log-transactions';
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
