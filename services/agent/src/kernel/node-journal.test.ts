import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { Errno, isStrataError } from '@strata/errors';
import { NodeJournal } from './node-journal';
import { NodeTable, ROOT_INO } from './node-table';

function tmp(): { dir: string; file: string; done(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-journal-'));
  return { dir, file: path.join(dir, 'm.nodes'), done: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

describe('NodeJournal', () => {
  it('has every ino a table handed out on file before it is used, and a successor table continues from it', () => {
    const t = tmp();
    try {
      const table = new NodeTable();
      const j = NodeJournal.create(t.file, table.contents().next, table.contents().nodes);
      table.journalTo(j);
      const odd = '/d\n"x\u00ff';
      const a = table.inoOf('/a');
      const b = table.inoOf(odd);
      const listed = table.batch(() => [table.inoOf('/d/1'), table.inoOf('/d/2'), table.inoOf('/a')]);
      // Read while the writer still has it open: what a crash leaves.
      const back = NodeJournal.read(t.file);
      assert.equal(back.nodes.get(a), '/a');
      assert.equal(back.nodes.get(b), odd);
      assert.equal(back.nodes.get(listed[1]), '/d/2');
      assert.equal(j.stats.writes, 3, 'one write per ino outside a batch, one for the batch');
      const next = new NodeTable(back);
      assert.equal(next.keyOf(b), odd);
      assert.equal(next.inoOf('/a'), a);
      assert.ok(next.inoOf('/new') > listed[1], 'never reuses an ino');
      assert.equal(next.keyOf(ROOT_INO), '/');
      j.close();
    } finally {
      t.done();
    }
  });

  it('rewrites compactly at a sweep, keeping the next ino; a cut last line is ignored', async () => {
    const t = tmp();
    try {
      const table = new NodeTable();
      const j = NodeJournal.create(t.file, 2n, []);
      table.journalTo(j);
      let live = new Set<bigint>();
      table.sweepWith(() => live, 2);
      const inos = ['/1', '/2', '/3'].map((k) => table.inoOf(k));
      await tick();
      live = new Set([inos[0]]);
      table.inoOf('/4');
      table.inoOf('/5');
      await tick();
      // Twice: the first keeps what was handed out since the last.
      table.sweep();
      table.sweep();
      const back = NodeJournal.read(t.file);
      assert.deepEqual([...back.nodes.keys()].filter((i) => i !== ROOT_INO).sort(), [inos[0]]);
      assert.ok(back.next > inos[2] + 2n, `next ${back.next}`);
      assert.ok(j.stats.rewrites >= 1);
      fs.appendFileSync(t.file, '+ 99 "/cut');
      assert.equal(NodeJournal.read(t.file).nodes.has(99n), false);
      j.close();
    } finally {
      t.done();
    }
  });

  it('refuses a foreign or damaged file with EUCLEAN', () => {
    const t = tmp();
    try {
      for (const text of ['strata-nodes 2\n', '{"not":"a journal"}\n', 'strata-nodes 1\n+ 5 /unquoted\n', 'strata-nodes 1\n+ 5 "relative"\n', 'strata-nodes 1\n+ x "/a"\n', 'strata-nodes 1\n+ 9007199254740991 "/a"\n', 'strata-nodes 1\nn 9007199254740992\n']) {
        fs.writeFileSync(t.file, text);
        assert.throws(() => NodeJournal.read(t.file), (e: unknown) => isStrataError(e) && e.errno === Errno.EUCLEAN, text);
      }
      assert.throws(() => NodeJournal.read(path.join(t.dir, 'absent')), (e: unknown) => isStrataError(e) && e.errno === Errno.ENOENT);
    } finally {
      t.done();
    }
  });
});
