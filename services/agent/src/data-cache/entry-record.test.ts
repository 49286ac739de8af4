import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeRecord, encodeRecord, readRecord, writeRecord, type EntryRecord } from './entry-record';
import { ChunkSums, sumOfFile } from './file-sum';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-entry-record-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const good: EntryRecord = {
  id: '7g3t1000\0/usr/bin/env',
  size: 5000,
  attrs: { ino: 12, size: 5000, mtimeSec: 1_700_000_000, mtimeNsec: 999_999_999, ctimeSec: 1_700_000_001, ctimeNsec: 0 },
  chunkSize: 1 << 20,
  sum: 0xffffffff,
};

describe('entry record', () => {
  it('reads back what it wrote, with a path longer than its first read', async () => {
    const long = { ...good, id: `7g3t1000\0/${'d/'.repeat(2000)}f\u00ff` };
    const file = path.join(root, 'a.meta');
    await writeRecord(file, long);
    assert.deepEqual(await readRecord(file), long);
    assert.deepEqual(fs.readdirSync(root), ['a.meta'], 'no temporary file left');
  });

  it('refuses records of another version, out of bounds or inconsistent', () => {
    const text = encodeRecord(good);
    assert.deepEqual(decodeRecord(text), good);
    const bad: Array<[string, string]> = [
      [text.replace('"v":1', '"v":2'), 'version 2'],
      [text.replace('\\u0000', '/'), 'bad id'],
      [text.replace('"size":5000,"attrs"', '"size":0,"attrs"'), 'bad size'],
      [text.replace('"ino":12,"size":5000', '"ino":12,"size":5001'), 'sizes differ'],
      [text.replace('"chunkSize":1048576', '"chunkSize":100'), 'bad chunk size'],
      [text.replace('"sum":4294967295', '"sum":4294967296'), 'bad sum'],
      [text.replace('"ino":12', '"ino":1.5'), 'bad attribute ino'],
      [text.replace('"mtimeNsec":999999999', '"mtimeNsec":"1"'), 'bad attribute mtimeNsec'],
      [text.slice(0, -3), 'not JSON'],
      ['[]', 'version undefined'],
      ['null', 'not an object'],
    ];
    for (const [t, why] of bad) assert.equal(decodeRecord(t), why, t);
  });

  it('does not read a record beyond its bound', async () => {
    const file = path.join(root, 'big.meta');
    fs.writeFileSync(file, `{"v":1,"id":"${'x'.repeat(70_000)}"}`);
    assert.equal(await readRecord(file), 'too large');
    assert.equal(await readRecord(path.join(root, 'missing.meta')), 'ENOENT');
  });
});

describe('file sum', () => {
  it('is the same whatever order the chunks come in, and what a read of the file gives', async () => {
    const bytes = Buffer.from(Array.from({ length: 3 * 4096 + 10 }, (_, i) => (i * 7) & 255));
    const inOrder = new ChunkSums(bytes.length, 4096);
    const reversed = new ChunkSums(bytes.length, 4096);
    for (let i = 0; i < 4; i++) inOrder.add(i, bytes.subarray(i * 4096, (i + 1) * 4096));
    for (let i = 3; i >= 0; i--) {
      assert.equal(reversed.total(), undefined, 'not before every chunk is in');
      reversed.add(i, bytes.subarray(i * 4096, (i + 1) * 4096));
    }
    assert.equal(inOrder.total(), reversed.total());
    const file = path.join(root, 'f.data');
    fs.writeFileSync(file, bytes);
    assert.equal(await sumOfFile(file, bytes.length, 4096), inOrder.total());
    bytes[5000] ^= 1;
    fs.writeFileSync(file, bytes);
    assert.notEqual(await sumOfFile(file, bytes.length, 4096), inOrder.total());
    assert.equal(await sumOfFile(file, bytes.length + 1, 4096), undefined, 'a short file has no sum');
  });
});
