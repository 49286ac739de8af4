import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, StrataError } from '@strata/errors';
import { ChunkCache, FAILURE_MEMO_MS } from './chunk-cache';

test('a fetch no resolver answered stands for the same chunk for a moment; other failures and other chunks ask again', async () => {
  let now = 0;
  const cache = new ChunkCache(1 << 20, { now: () => now });
  let fetches = 0;
  const outage = (): Promise<Buffer> => {
    fetches++;
    return Promise.reject(StrataError.unavailable('no resolver answered'));
  };
  await assert.rejects(cache.get('a', outage), /no resolver answered/);
  // The kernel's immediate second read of the same page: failed at once, no second wait.
  await assert.rejects(cache.get('a', outage), /no resolver answered/);
  assert.equal(fetches, 1);
  await assert.rejects(cache.get('b', outage));
  assert.equal(fetches, 2, 'another chunk is asked for');
  now += FAILURE_MEMO_MS;
  assert.equal((await cache.get('a', async () => Buffer.from('back'))).toString(), 'back', 'after the moment, asked again');
  // An answer about the file itself (ENOENT) is not remembered as an outage.
  let notFound = 0;
  const gone = (): Promise<Buffer> => {
    notFound++;
    return Promise.reject(new StrataError(Errno.ENOENT, 'gone'));
  };
  await assert.rejects(cache.get('c', gone));
  await assert.rejects(cache.get('c', gone));
  assert.equal(notFound, 2);
});
