import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, fileTypeOf, isDeviceMode, isDirMode, isLinkMode, isRegMode } from './index';

test('the type bits are the kernel values node reports', () => {
  assert.equal(S_IFMT, constants.S_IFMT);
  assert.equal(S_IFDIR, constants.S_IFDIR);
  assert.equal(S_IFREG, constants.S_IFREG);
  assert.equal(S_IFLNK, constants.S_IFLNK);
  assert.equal(S_IFCHR, constants.S_IFCHR);
});

test('fileTypeOf ignores permission bits and names unknown types', () => {
  assert.equal(fileTypeOf(S_IFDIR | 0o755), 'dir');
  assert.equal(fileTypeOf(S_IFREG | 0o4755), 'file');
  assert.equal(fileTypeOf(0o755), 'unknown');
  assert.ok(isDirMode(S_IFDIR | 0o700) && !isDirMode(S_IFREG));
  assert.ok(isRegMode(S_IFREG) && isLinkMode(S_IFLNK | 0o777) && isDeviceMode(S_IFCHR));
});
