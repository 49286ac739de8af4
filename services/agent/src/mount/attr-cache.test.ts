import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, StrataError } from '@strata/errors';
import { AttrCache } from './attr-cache';

test('lookups that failed with ENOENT, ENOTDIR or ELOOP are remembered; EIO and foreign errors never are', () => {
  const cache = new AttrCache({ entries: 10 });
  for (const errno of [Errno.ENOENT, Errno.ENOTDIR, Errno.ELOOP]) {
    cache.failed(`/e${errno}`, new StrataError(errno, 'a fact about the tree'));
    assert.deepEqual(cache.get(`/e${errno}`), { errno });
  }
  cache.failed('/eio', new StrataError(Errno.EIO, 'no resolver answered'));
  cache.failed('/eacces', new StrataError(Errno.EACCES, 'denied'));
  cache.failed('/foreign', Object.assign(new Error('ENOENT'), { code: 'ENOENT' }));
  for (const k of ['/eio', '/eacces', '/foreign']) assert.equal(cache.get(k), undefined, k);
});
