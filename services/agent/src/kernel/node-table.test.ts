import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { isStrataError, Errno } from '@strata/errors';
import { NodeTable, ROOT_INO } from './node-table';

describe('NodeTable', () => {
  it('gives each path one ino, never reused, and ESTALE for inos it does not know', () => {
    const t = new NodeTable();
    const a = t.inoOf('/a');
    assert.equal(t.inoOf('/a'), a);
    assert.notEqual(t.inoOf('/b'), a);
    assert.equal(t.keyOf(ROOT_INO), '/');
    assert.throws(() => t.keyOf(999n), (e: unknown) => isStrataError(e) && e.errno === Errno.ESTALE);
  });

  it('forgets, past its threshold, the paths whose inos are neither live nor handed out since the last sweep', async () => {
    const t = new NodeTable();
    let live = new Set<bigint>();
    const reports: number[] = [];
    t.sweepWith(() => live, 4, (r) => reports.push(r.forgotten));
    const first = ['/1', '/2', '/3', '/4', '/5'].map((k) => t.inoOf(k));
    await tick();
    // The first sweep keeps all of them: handed out since the (non-existent) last one.
    assert.deepEqual(reports, [0]);
    live = new Set([first[0]]);
    // Past twice what stayed (6): 13 paths.
    const more = Array.from({ length: 7 }, (_, i) => t.inoOf(`/m${i}`));
    await tick();
    // Second sweep: /1 is live, the m* are fresh, /2../5 go.
    assert.deepEqual(reports, [0, 4]);
    assert.equal(t.keyOf(first[0]), '/1');
    assert.throws(() => t.keyOf(first[1]), (e: unknown) => isStrataError(e) && e.errno === Errno.ESTALE);
    for (const [i, ino] of more.entries()) assert.equal(t.keyOf(ino), `/m${i}`);
    // A forgotten path comes back with a new ino, never an old one.
    const again = t.inoOf('/2');
    assert.ok(again > more[more.length - 1]);
    assert.equal(t.keyOf(ROOT_INO), '/', 'the root stays');
  });

  it('waits for twice what stayed before sweeping again', async () => {
    const t = new NodeTable();
    let sweeps = 0;
    t.sweepWith(() => [], 2, () => sweeps++);
    for (let i = 0; i < 3; i++) t.inoOf(`/a${i}`);
    await tick();
    assert.equal(sweeps, 1);
    assert.equal(t.size, 4, 'all fresh: kept');
    t.inoOf('/b');
    t.inoOf('/c');
    await tick();
    assert.equal(sweeps, 1, 'threshold is now 8');
  });
});
