import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStrataError } from '@strata/errors';
import { decodeHandle, encodeHandle } from './handle';

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
