import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import type { IndexedEntry } from './cache-index';
import { decodeJournalLine, journalLine, readJournal, RecordJournal, JOURNAL_FILE } from './record-journal';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-journal-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => {
  const d = path.join(root, `d${++dirs}`);
  fs.mkdirSync(d);
  return d;
};

function entry(i: number, pathBytes = `/usr/lib/f${i}`): IndexedEntry {
  return {
    name: i.toString(16).padStart(24, '0'),
    usedMs: 1_700_000_000_000 + i,
    record: { id: `7g1t9\0${pathBytes}`, size: 100 + i, attrs: { ino: i + 1, size: 100 + i, mtimeSec: 1, mtimeNsec: 2, ctimeSec: 3, ctimeNsec: 4 }, chunkSize: 1 << 20, sum: (i * 2654435761) >>> 0 },
  };
}

describe('record journal', () => {
  it('reads back what was appended, across batches and reopenings', async () => {
    const dir = newDir();
    const j = new RecordJournal(dir);
    await j.append([entry(1), entry(2)]);
    await j.append([entry(3, '/odd\n"name"\u00ff')]);
    await j.close();
    const again = new RecordJournal(dir);
    await again.append([entry(4)]);
    const got = await readJournal(dir);
    assert.equal(got.damaged, 0);
    assert.equal(got.lines, 4);
    assert.deepEqual([...got.entries.values()], [entry(1), entry(2), entry(3, '/odd\n"name"\u00ff'), entry(4)]);
    await again.close();
  });

  it('skips a torn or damaged line and keeps the rest; an append after a torn end is read', async () => {
    const dir = newDir();
    const file = path.join(dir, JOURNAL_FILE);
    const lines = [1, 2, 3, 4].map((i) => journalLine(entry(i)));
    // A byte changed inside line 2 (its CRC no longer matches), line 4 cut short by a crash mid-write.
    const hit = lines[1].indexOf('"size":') + 7;
    const damaged = lines[1].slice(0, hit) + String((Number(lines[1][hit]) + 1) % 10) + lines[1].slice(hit + 1);
    fs.writeFileSync(file, lines[0] + damaged + lines[2] + lines[3].slice(0, 30));
    let got = await readJournal(dir);
    assert.deepEqual([...got.entries.keys()], [entry(1).name, entry(3).name]);
    assert.equal(got.damaged, 2);
    // The next agent appends behind the torn end: its first line starts a line of its own.
    const j = new RecordJournal(dir);
    await j.append([entry(5)]);
    await j.close();
    got = await readJournal(dir);
    assert.deepEqual([...got.entries.keys()], [entry(1).name, entry(3).name, entry(5).name]);
  });

  it('refuses a line of another version, a CRC that does not match, and JSON that is no record', () => {
    const good = journalLine(entry(9)).trimEnd();
    assert.deepEqual(decodeJournalLine(good), entry(9));
    const json = good.slice(12);
    const withCrc = (tag: string, text: string): string => `${tag} ${crc32(text).toString(16).padStart(8, '0')} ${text}`;
    assert.equal(decodeJournalLine(withCrc('j2', json)), undefined, 'another line version');
    assert.equal(decodeJournalLine(withCrc('j1', json.replace('"v":1', '"v":2'))), undefined, 'another record version');
    assert.equal(decodeJournalLine(withCrc('j1', json.replace(/"n":"[0-9a-f]+"/, '"n":"../etc"'))), undefined, 'a name that is not ours');
    assert.equal(decodeJournalLine(withCrc('j1', '{"n":"ab","u":1}')), undefined, 'no record');
    assert.equal(decodeJournalLine(`j1 00000000 ${json}`), undefined, 'wrong CRC');
    assert.equal(decodeJournalLine('j1 zzzzzzzz {}'), undefined);
    assert.equal(decodeJournalLine(''), undefined);
  });

  it('is emptied by truncate, open or not, and a missing journal reads as empty', async () => {
    const dir = newDir();
    assert.deepEqual(await readJournal(dir), { entries: new Map(), lines: 0, damaged: 0 });
    const j = new RecordJournal(dir);
    await j.truncate();
    await j.append([entry(1)]);
    await j.truncate();
    await j.append([entry(2)]);
    assert.deepEqual([...(await readJournal(dir)).entries.keys()], [entry(2).name]);
    await j.close();
    await new RecordJournal(dir).truncate();
    assert.equal(fs.statSync(path.join(dir, JOURNAL_FILE)).size, 0);
  });

  it('survives random damage: never throws, every entry it returns is one that was written', async () => {
    const dir = newDir();
    const file = path.join(dir, JOURNAL_FILE);
    const written = Array.from({ length: 20 }, (_, i) => entry(i));
    const pristine = Buffer.from(written.map(journalLine).join(''));
    const byName = new Map(written.map((e) => [e.name, e]));
    for (let round = 0; round < 300; round++) {
      let b = Buffer.from(pristine);
      if (round % 3 === 0) b = b.subarray(0, Math.floor(Math.random() * b.length));
      for (let k = 0; k < 1 + (round % 8); k++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
      if (round % 50 === 0) b = randomBytes(4096);
      fs.writeFileSync(file, b);
      const got = await readJournal(dir);
      for (const [name, e] of got.entries) assert.deepEqual(e, byName.get(name), `round ${round}: ${name}`);
      assert.ok(got.entries.size + got.damaged <= got.lines);
    }
  });
});

describe('journal and snapshot lines', () => {
  it('are the JSON of the record behind the name and time, as JSON.stringify writes it', () => {
    for (const e of [entry(1), entry(2, '/a "quoted"\\path\n\u0000\u00e9'), { ...entry(3), usedMs: 1.6 }]) {
      const json = journalLine(e).slice(12, -1);
      const r = e.record;
      assert.equal(json, JSON.stringify({ n: e.name, u: Math.round(e.usedMs), v: 1, id: r.id, size: r.size, attrs: r.attrs, chunkSize: r.chunkSize, sum: r.sum }));
    }
  });
});
