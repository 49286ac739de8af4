/**
 * The open-modes file's reader (native/open-table.h), against tables laid
 * out here from its documented layout: what it takes, what a process
 * killed between two stores may leave (taken), what damage looks like
 * (ignored whole, with the reason), and random damage (never a crash, and
 * what it takes always keeps the rules a successor relies on).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addon } from './native';

const MAGIC = 0x31534e45504f5453n;
const HEADER = 64;
const RECORD = 24;

interface Rec {
  key: bigint;
  cached?: number;
  passthrough?: number;
  openBacking?: number;
  registered?: number;
}

function table(capacity: number, recs: Rec[], o: { generation?: number; flags?: number; version?: number } = {}): Buffer {
  const b = Buffer.alloc(HEADER + capacity * RECORD);
  b.writeBigUInt64LE(MAGIC, 0);
  b.writeUInt32LE(o.version ?? 1, 8);
  b.writeUInt32LE(capacity, 12);
  b.writeUInt32LE(o.generation ?? 0, 16);
  b.writeUInt32LE(o.flags ?? 0, 20);
  recs.forEach((r, i) => {
    const at = HEADER + i * 2 * RECORD; // every other slot: free ones between
    b.writeBigUInt64LE(r.key, at);
    b.writeUInt32LE(r.cached ?? 0, at + 8);
    b.writeUInt32LE(r.passthrough ?? 0, at + 12);
    b.writeInt32LE(r.openBacking ?? -1, at + 16);
    b.writeInt32LE(r.registered ?? -1, at + 20);
  });
  return b;
}

describe('open-modes file reader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fuse-kernel-open-table-'));
  const file = join(dir, 't.opens');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const read = (b: Buffer): ReturnType<ReturnType<typeof addon>['readOpenTable']> => {
    writeFileSync(file, b);
    return addon().readOpenTable(file);
  };

  it('takes opens, passthrough ids and registrations', () => {
    const t = read(
      table(8, [{ key: 7n, passthrough: 2, openBacking: 3, registered: 3 }, { key: 9n, cached: 1 }, { key: 11n, registered: 5 }], { generation: 4, flags: 1 }),
    );
    assert.equal(t.ok, true, t.problem);
    assert.equal(t.generation, 4);
    assert.equal(t.overflowed, true);
    assert.deepEqual(t.opens, [
      [7n, 0, 2, 3],
      [9n, 1, 0, -1],
    ]);
    assert.deepEqual(t.registered, [
      [7n, 3],
      [11n, 5],
    ]);
  });

  it('a record left between two stores says nothing wrong: a stale id beside no passthrough opens is dropped', () => {
    const t = read(table(4, [{ key: 7n, cached: 0, passthrough: 0, openBacking: 3 }]));
    assert.equal(t.ok, true, t.problem);
    assert.deepEqual(t.opens, []);
  });

  const damaged: [string, Buffer, RegExp][] = [
    ['another magic', (() => { const b = table(2, []); b[0] ^= 1; return b; })(), /not an open table/],
    ['another version', table(2, [], { version: 2 }), /not an open table/],
    ['unknown flags', table(2, [], { flags: 6 }), /capacity/],
    ['capacity beyond the file', table(2, []).subarray(0, HEADER + RECORD), /capacity/],
    ['capacity 0', table(0, []), /capacity/],
    ['shorter than a header', Buffer.alloc(10), /header/],
    ['a key twice', table(4, [{ key: 7n, cached: 1 }, { key: 7n, cached: 1 }]), /damaged/],
    ['passthrough opens without an id', table(4, [{ key: 7n, passthrough: 1, openBacking: -1 }]), /damaged/],
    ['a count past INT32_MAX', table(4, [{ key: 7n, cached: 2 ** 31 }]), /damaged/],
    ['a registration of id 0', table(4, [{ key: 7n, registered: 0 }]), /damaged/],
    ['one id for two keys', table(4, [{ key: 7n, passthrough: 1, openBacking: 3 }, { key: 8n, registered: 3 }]), /another key/],
  ];
  for (const [what, bytes, why] of damaged) {
    it(`ignored whole: ${what}`, () => {
      const t = read(bytes);
      assert.equal(t.ok, false);
      assert.match(t.problem, why);
      assert.deepEqual([t.opens, t.registered], [[], []]);
    });
  }

  it('no file: ignored, saying so', () => {
    const t = addon().readOpenTable(join(dir, 'none'));
    assert.equal(t.ok, false);
    assert.match(t.problem, /No such file/);
  });

  it('fuzz: random damage never crashes, and whatever is taken keeps the rules', () => {
    const base = table(64, [
      { key: 7n, passthrough: 2, openBacking: 3, registered: 3 },
      { key: 9n, cached: 1 },
      { key: 11n, registered: 5 },
      { key: 12n, cached: 3, passthrough: 0, openBacking: 9 },
    ]);
    let taken = 0;
    for (let round = 0; round < 1500; round++) {
      const b = Buffer.from(base);
      const n = 1 + (round % 6);
      for (let i = 0; i < n; i++) {
        const at = (round * 7919 + i * 104729 + randomBytes(2).readUInt16LE(0)) % b.length;
        b[at] = randomBytes(1)[0] as number;
      }
      const cut = round % 10 === 0 ? b.subarray(0, randomBytes(2).readUInt16LE(0) % b.length) : b;
      const t = read(cut);
      if (!t.ok) {
        assert.ok(t.problem.length > 0);
        continue;
      }
      taken++;
      const keys = new Set<bigint>();
      const owner = new Map<number, bigint>();
      for (const [key, cached, passthrough, id] of t.opens) {
        assert.ok(key !== 0n && !keys.has(key));
        keys.add(key);
        assert.ok(cached >= 0 && passthrough >= 0 && cached + passthrough > 0);
        assert.equal(passthrough > 0, id > 0);
        if (id > 0) {
          assert.ok((owner.get(id) ?? key) === key);
          owner.set(id, key);
        }
      }
      for (const [key, id] of t.registered) {
        assert.ok(id > 0 && (owner.get(id) ?? key) === key);
        owner.set(id, key);
      }
    }
    assert.ok(taken > 0, 'some mutations leave a table it takes');
  });
});
