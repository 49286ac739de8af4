import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { Errno, GrpcCode, StrataError, errorMessage, isStrataError } from './index';

test('a missing file maps to ENOENT and NOT_FOUND', async () => {
  const err = await fs.lstat('/nonexistent/strata').catch((e: unknown) => e);
  const s = StrataError.from(err, 'stat');
  assert.equal(s.errno, Errno.ENOENT);
  assert.equal(s.code, GrpcCode.NOT_FOUND);
  assert.equal(s.errnoName, 'ENOENT');
});

test('an explicit gRPC code wins over the derived one', () => {
  const s = new StrataError(Errno.EINVAL, 'bad', { code: GrpcCode.FAILED_PRECONDITION });
  assert.equal(s.code, GrpcCode.FAILED_PRECONDITION);
});

test('a non-system error becomes EIO rather than escaping untyped', () => {
  const s = StrataError.from(new TypeError('boom'), 'read');
  assert.equal(s.errno, Errno.EIO);
  assert.match(s.message, /read: boom/);
});

test('StrataError.from keeps strata errors, keeps system errnos, and prefixes context', async () => {
  const original = StrataError.notFound('gone');
  assert.equal(StrataError.from(original, 'ignored'), original);
  const sys = await fs.readdir('/etc/hostname').catch((e: unknown) => e);
  const s = StrataError.from(sys, 'readdir /etc/hostname');
  assert.equal(s.errno, Errno.ENOTDIR);
  assert.match(s.message, /^readdir \/etc\/hostname: ENOTDIR$/);
  assert.equal(StrataError.from('a string').errno, Errno.EIO);
  assert.equal(errorMessage({ message: 'plain object' }), 'plain object');
  assert.equal(errorMessage(42), '42');
});

test('isStrataError recognises an error from another copy of the module', () => {
  // A second copy of the module (another version in node_modules) has its own class.
  const modulePath = require.resolve('./strata-error');
  const cached = require.cache[modulePath];
  delete require.cache[modulePath];
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh copy needs a fresh require
  const copy = require('./strata-error') as typeof import('./strata-error');
  if (cached) require.cache[modulePath] = cached;
  const foreign = new copy.StrataError(Errno.EIO, 'from the other copy');
  assert.notEqual(copy.StrataError, StrataError);
  assert.ok(!(foreign instanceof StrataError));
  assert.ok(isStrataError(foreign));
  assert.ok(!isStrataError(new Error('plain')));
});

test('retryability comes from the status code, not the message', () => {
  assert.equal(StrataError.unavailable('no resolver answers').retryable, true);
  assert.equal(new StrataError(Errno.EIO, 'Cancelled on client', { code: GrpcCode.CANCELLED }).retryable, false);
  assert.equal(StrataError.invalid('bad').retryable, false);
  assert.equal(StrataError.corrupt('bad image').code, GrpcCode.DATA_LOSS);
  assert.equal(StrataError.unsupported('zstd').errno, Errno.EOPNOTSUPP);
});
