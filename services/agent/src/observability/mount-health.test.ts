import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno } from '@strata/errors';
import { DEGRADED_AFTER, MountHealth } from './mount-health';

test('answers, ENOENT included, keep a mount serving; failures in a row make it degraded until one answer', () => {
  let now = 1_000_000;
  const h = new MountHealth(() => now);
  assert.equal(h.report(false).state, 'serving');
  h.answered();
  for (let i = 0; i < 10; i++) h.failed(Errno.ENOENT, 'no such file');
  assert.equal(h.report(false).state, 'serving', 'ENOENT is an answer about the tree');
  for (let i = 0; i < DEGRADED_AFTER - 1; i++) h.failed(Errno.EIO, 'image unreadable');
  assert.equal(h.report(false).state, 'serving');
  h.failed(Errno.EIO, 'image unreadable');
  const r = h.report(false);
  assert.equal(r.state, 'degraded');
  assert.equal(r.consecutiveFailures, DEGRADED_AFTER);
  assert.deepEqual(r.lastError, { errno: 'EIO', message: 'image unreadable', at: new Date(now).toISOString() });
  assert.deepEqual(r.recent, { answered: 11, failed: DEGRADED_AFTER });
  h.answered();
  assert.equal(h.report(false).state, 'serving');
  // Counts age out of the one-minute window.
  now += 61_000;
  assert.deepEqual(h.report(false).recent, { answered: 0, failed: 0 });
});

test('EACCES in a row: revoked; no resolver at all: resolvers-away, whatever the mount saw', () => {
  const h = new MountHealth();
  for (let i = 0; i < DEGRADED_AFTER; i++) h.failed(Errno.EACCES, 'permission denied');
  assert.equal(h.report(false).state, 'revoked');
  assert.equal(h.report(true).state, 'resolvers-away');
  assert.equal(new MountHealth().report(true).state, 'resolvers-away');
});
