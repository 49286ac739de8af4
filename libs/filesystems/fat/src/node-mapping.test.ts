import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StrataError } from '@strata/errors';
import { ATTR_DIR, ATTR_HIDDEN, ATTR_RO, ATTR_SYS } from './dir-entry';
import { decodeHandle, entryHandle, ROOT_HANDLE } from './handle';
import { blocksOf, entryNode, modeOf, rootNode } from './node-mapping';
import { parseShortEntry } from './dir-entry';
import { shortEntry } from './entry-fixtures';

test('modes: umask 022, read-only clears write bits on files only, hidden/system ignored', () => {
  assert.equal(modeOf(0x20), 0o100755);
  assert.equal(modeOf(ATTR_RO), 0o100555);
  assert.equal(modeOf(ATTR_HIDDEN | ATTR_SYS), 0o100755);
  assert.equal(modeOf(ATTR_DIR), 0o040755);
  assert.equal(modeOf(ATTR_DIR | ATTR_RO), 0o040755);
});

test('blocks round the size up to whole clusters', () => {
  assert.equal(blocksOf(0, 4096), 0);
  assert.equal(blocksOf(1, 4096), 8);
  assert.equal(blocksOf(4096, 4096), 8);
  assert.equal(blocksOf(4097, 512), 9);
});

test('an entry maps to stat: ctime is mtime, atime the access date, crtime with its 10 ms', () => {
  const date = ((2022 - 1980) << 9) | (3 << 5) | 4;
  const e = parseShortEntry(
    shortEntry('FILE    TXT', { size: 5000, time: (10 << 11) | (20 << 5) | 15, date, adate: date, ctime: (9 << 11) | 1, cdate: date, ctimeCs: 123 }),
    0,
    false,
  );
  const n = entryNode(99, e, 2048, undefined);
  const day = BigInt(Date.parse('2022-03-04T00:00:00Z')) * 1_000_000n;
  assert.equal(n.mtimeNs, day + BigInt(10 * 3600 + 20 * 60 + 30) * 1_000_000_000n);
  assert.equal(n.ctimeNs, n.mtimeNs);
  assert.equal(n.atimeNs, day);
  assert.equal(n.crtimeNs, day + BigInt(9 * 3600 + 2 + 1) * 1_000_000_000n + 230_000_000n);
  assert.equal(n.blocks, 12);
  assert.equal(n.blksize, 2048);
  assert.equal(n.nlink, 1);
  const root = rootNode(ROOT_HANDLE, 16384, 3, 4096);
  assert.equal(root.nlink, 5);
  assert.equal(root.mtimeNs, 0n);
});

test('handles: stable positions, root 1, garbage refused', () => {
  assert.deepEqual(decodeHandle(entryHandle(0, 0), 100), { dirKey: 0, index: 0 });
  assert.deepEqual(decodeHandle(entryHandle(0x0ffffff5, 65535), 0x0ffffff6), { dirKey: 0x0ffffff5, index: 65535 });
  assert.ok(Number.isSafeInteger(entryHandle(0x0ffffff5, 65535)));
  assert.notEqual(entryHandle(0, 0), ROOT_HANDLE);
  for (const h of [0, -1, 1.5, entryHandle(1, 0), entryHandle(100, 0), Number.MAX_SAFE_INTEGER + 1]) {
    assert.throws(() => decodeHandle(h, 100), (e: unknown) => e instanceof StrataError && e.errno === 22, String(h));
  }
});
