import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { openImage, type GuestRange } from '../index';
import { prng, qemuImg, qemuIo, rejectsWith, run, tempDir } from '../fixtures';

let store: string;
let cleanup: () => void;
const MiB = 1024 * 1024;
const at = (name: string): string => path.join(store, name);

before(() => {
  ({ dir: store, cleanup } = tempDir('qcow2-snapshots'));
  store = realpathSync(store);
});
after(() => cleanup());

/** What qemu reads from one snapshot (or the active state). */
function bytesOf(name: string, snapshot?: string): Buffer {
  const out = at('truth.raw');
  run('qemu-img', ['convert', '-f', 'qcow2', ...(snapshot ? ['-l', `snapshot.name=${snapshot}`] : []), '-O', 'raw', at(name), out]);
  const b = readFileSync(out);
  rmSync(out);
  return b;
}

/** Every byte that differs between a and b lies in the ranges. */
function assertCovered(ranges: readonly GuestRange[], a: Buffer, b: Buffer, what: string): void {
  const inside = (o: number): boolean => ranges.some((r) => o >= r.offset && o < r.offset + r.length);
  for (let o = 0; o < Math.max(a.length, b.length); o += 512) {
    const x = a.subarray(o, o + 512);
    const y = b.subarray(o, o + 512);
    if (!x.equals(y)) assert.ok(inside(o), `${what}: bytes at ${o} differ outside the changed ranges`);
  }
}

const total = (ranges: readonly GuestRange[]): number => ranges.reduce((n, r) => n + r.length, 0);

test('changes between internal snapshots come from the L1/L2 tables, in time and size ∝ the change', async () => {
  const rnd = prng(5);
  const raw = Buffer.alloc(8 * MiB);
  for (let i = 0; i < raw.length; i += 512) if (rnd() < 0.5) raw.fill(Math.floor(rnd() * 256), i, i + 512);
  writeFileSync(at('src.raw'), raw);
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', at('src.raw'), at('s.qcow2'));
  qemuImg('snapshot', '-c', 's1', at('s.qcow2'));
  qemuIo(at('s.qcow2'), 'write -P 0xab 1M 64k', 'write -z 3M 128k', 'discard 5M 64k');
  qemuImg('snapshot', '-c', 's2', at('s.qcow2'));
  qemuIo(at('s.qcow2'), 'write -P 0xcd 7M 4k');
  const s1 = bytesOf('s.qcow2', 's1');
  const s2 = bytesOf('s.qcow2', 's2');
  const active = bytesOf('s.qcow2');

  const img = await openImage('s.qcow2', { storeRoot: store });
  try {
    const sinceS1 = await img.changedSince('s1');
    assertCovered(sinceS1, active, s1, 'active vs s1');
    assert.ok(total(sinceS1) <= 6 * 65536, `${total(sinceS1)} bytes reported changed`);
    const sinceS2 = await img.changedSince('2');
    assertCovered(sinceS2, active, s2, 'active vs s2');
    assert.deepEqual(sinceS2, [{ offset: 7 * MiB, length: 65536 }]);
    await rejectsWith(img.changedSince('nope'), 'ENOENT', /has no snapshot "nope"; its snapshots: 1 "s1", 2 "s2"/);
  } finally {
    await img.close();
  }
  const atS2 = await openImage('s.qcow2', { storeRoot: store, snapshot: 's2' });
  try {
    const s2SinceS1 = await atS2.changedSince('s1');
    assertCovered(s2SinceS1, s2, s1, 's2 vs s1');
    assert.ok(!s2SinceS1.some((r) => r.offset <= 7 * MiB && r.offset + r.length > 7 * MiB), 'the write after s2 is not a change between s1 and s2');
    assert.deepEqual(await atS2.changedSince('s2'), []);
  } finally {
    await atS2.close();
  }
});
