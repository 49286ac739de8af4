import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nameHash } from './name-hash';
import { decodeHandle, encodeHandle } from './handle';
import { isStrataError } from '@strata/errors';
import { crc32c } from '@strata/filesystem';
import { crc32cSliced } from './crc32c-sliced';

test('name hash: the DIR_ITEM key offset mkfs/kernel give "default" in the root tree', () => {
  // From `btrfs inspect-internal dump-tree -t 1`: key (ROOT_TREE_DIR DIR_ITEM 2378154706) name: default
  assert.equal(nameHash(Buffer.from('default')), 2378154706n);
});

test('handles: (tree, objectid) round-trip; EOVERFLOW beyond 2^21 trees or 2^32 objectids', () => {
  for (const [t, o] of [[5, 256], [256, 257], [2 ** 21 - 1, 2 ** 32 - 1], [0, 1]] as const) {
    const h = encodeHandle(t, o);
    assert.ok(Number.isSafeInteger(h));
    assert.deepEqual(decodeHandle(h), { tree: t, objectid: o });
  }
  assert.notEqual(encodeHandle(5, 256), encodeHandle(256, 256));
  for (const [t, o] of [[2 ** 21, 256], [5, 2 ** 32], [5n, 1n << 60n]] as const) {
    assert.throws(() => encodeHandle(t, o), (e: unknown) => isStrataError(e) && e.errno === 75);
  }
  assert.throws(() => decodeHandle(-1), (e: unknown) => isStrataError(e) && e.errno === 22);
  assert.throws(() => decodeHandle(1.5), (e: unknown) => isStrataError(e) && e.errno === 22);
});

test('crc32c slicing-by-8 equals the bytewise reference at every length and alignment', () => {
  const data = Buffer.alloc(300);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  for (let start = 0; start < 9; start++) {
    for (let end = start; end <= data.length; end += 13) {
      assert.equal(crc32cSliced(0xffffffff, data, start, end), crc32c(0xffffffff, data, start, end));
      assert.equal(crc32cSliced(0x1234, data, start, end), crc32c(0x1234, data, start, end));
    }
  }
});
