import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { Metadata } from '@grpc/grpc-js';
import { fromServiceError, toServiceError } from './index';

test('errno and path survive the status details trailer', () => {
  const path = Buffer.from([0x2f, 0x61, 0xff, 0xfe]);
  const sent = toServiceError(new StrataError(Errno.ENOTDIR, 'not a directory', { path }));
  assert.equal(sent.code, GrpcCode.INVALID_ARGUMENT);
  const got = fromServiceError({ code: sent.code, details: sent.details, metadata: sent.metadata });
  assert.equal(got.errno, Errno.ENOTDIR);
  assert.equal(got.code, GrpcCode.INVALID_ARGUMENT);
  assert.deepEqual(got.path, path);
});

test('a status without details maps the gRPC code to an errno', () => {
  const got = fromServiceError({ code: GrpcCode.UNAVAILABLE, details: 'no connection', metadata: new Metadata() });
  assert.equal(got.errno, Errno.EIO);
  assert.equal(got.code, GrpcCode.UNAVAILABLE);
});

test('a corrupt trailer is ignored, not thrown', () => {
  const md = new Metadata();
  md.set('grpc-status-details-bin', Buffer.from([0xff, 0xff, 0xff]));
  const got = fromServiceError({ code: GrpcCode.NOT_FOUND, details: 'x', metadata: md });
  assert.equal(got.errno, Errno.ENOENT);
});
