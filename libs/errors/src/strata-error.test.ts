import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { Errno, GrpcCode, StrataError, fromSystemError } from './index';

test('a missing file maps to ENOENT and NOT_FOUND', async () => {
  const err = await fs.lstat('/nonexistent/strata').catch((e: unknown) => e);
  const s = fromSystemError(err, 'stat');
  assert.equal(s.errno, Errno.ENOENT);
  assert.equal(s.code, GrpcCode.NOT_FOUND);
  assert.equal(s.errnoName, 'ENOENT');
});

test('an explicit gRPC code wins over the derived one', () => {
  const s = new StrataError(Errno.EINVAL, 'bad', { code: GrpcCode.FAILED_PRECONDITION });
  assert.equal(s.code, GrpcCode.FAILED_PRECONDITION);
});

test('a non-system error becomes EIO rather than escaping untyped', () => {
  const s = fromSystemError(new TypeError('boom'), 'read');
  assert.equal(s.errno, Errno.EIO);
  assert.match(s.message, /read: boom/);
});
