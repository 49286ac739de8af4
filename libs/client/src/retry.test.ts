import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { toServiceError } from '@strata/protocol';
import { FakeClock } from './fake-clock';
import { isRetryable, withRetry, type RetryPolicy } from './retry';

/** Endpoints dealt in turn, like an EndpointPool; remembers which were picked. */
function pool(...names: string[]): { pick(): string; picked: string[] } {
  let next = 0;
  const picked: string[] = [];
  return {
    picked,
    pick() {
      const n = names[next++ % names.length];
      picked.push(n);
      return n;
    },
  };
}

/** What grpc-js hands a callback when no resolver answers. */
const unavailable = (): object => ({ code: GrpcCode.UNAVAILABLE, details: 'No connection established', message: '14 UNAVAILABLE' });

describe('isRetryable', () => {
  test('decides by status code and by who cancelled, never by the message', () => {
    assert.equal(isRetryable(StrataError.unavailable('gone'), false), true);
    assert.equal(isRetryable(StrataError.unavailable('gone'), true), true);
    // The resolver cancelled (forced down after its drain grace period): not served, safe to repeat.
    assert.equal(isRetryable(new StrataError(Errno.ECANCELED, 'Call cancelled', { code: GrpcCode.CANCELLED }), false), true);
    // The same code after a cancel of our own is not retried, whatever the message says.
    assert.equal(isRetryable(new StrataError(Errno.ECANCELED, 'Call cancelled', { code: GrpcCode.CANCELLED }), true), false);
    assert.equal(isRetryable(new StrataError(Errno.ECANCELED, 'Cancelled on client', { code: GrpcCode.CANCELLED }), false), true);
    assert.equal(isRetryable(StrataError.notFound('no such file'), false), false);
    assert.equal(isRetryable(StrataError.invalid('bad'), false), false);
    assert.equal(isRetryable(new StrataError(Errno.ETIMEDOUT, 'deadline', { code: GrpcCode.DEADLINE_EXCEEDED }), false), false);
  });
});

describe('withRetry', () => {
  const policy: RetryPolicy = { attempts: 4, backoffMs: 50 };

  test('retries a retryable failure on the next endpoint, with doubling pauses, until it succeeds', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const p = pool('a', 'b', 'c');
    const at: number[] = [];
    const got = await clock.run(
      withRetry(p, policy, t0 + 10_000, async (endpoint) => {
        at.push(clock.now() - t0);
        if (endpoint !== 'a' || at.length < 4) throw unavailable();
        return `answer from ${endpoint}`;
      }, clock),
    );
    assert.equal(got, 'answer from a');
    assert.deepEqual(p.picked, ['a', 'b', 'c', 'a']);
    assert.deepEqual(at, [0, 50, 150, 350]);
  });

  test('gives up after policy.attempts attempts with the last error', async () => {
    const clock = new FakeClock();
    const p = pool('a', 'b');
    let calls = 0;
    const err = await clock.run(
      withRetry(p, policy, clock.now() + 10_000, async () => {
        calls++;
        throw unavailable();
      }, clock).catch((e: unknown) => e),
    );
    assert.equal(calls, 4);
    assert.ok(err instanceof StrataError);
    assert.equal(err.code, GrpcCode.UNAVAILABLE);
    assert.equal(err.errno, Errno.EIO);
  });

  test('never pauses past the deadline, and gives every attempt the same deadline', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const deadline = t0 + 120;
    const at: number[] = [];
    const deadlines = new Set<number>();
    const err = await clock.run(
      withRetry(pool('a', 'b'), { attempts: 10, backoffMs: 100 }, deadline, async (_e, d) => {
        at.push(clock.now() - t0);
        deadlines.add(d);
        throw unavailable();
      }, clock).catch((e: unknown) => e),
    );
    // 0, then 100 later; the next pause (200) is cut to the 20 ms left, and at the deadline no attempt starts.
    assert.deepEqual(at, [0, 100]);
    assert.equal(clock.now(), deadline, 'gave up at the deadline, not after the full backoff');
    assert.deepEqual([...deadlines], [deadline]);
    assert.ok(err instanceof StrataError && err.code === GrpcCode.UNAVAILABLE);
  });

  test('throws a non-retryable failure at once, with the errno the resolver sent', async () => {
    const clock = new FakeClock();
    const p = pool('a', 'b');
    const sent = StrataError.notFound('no such file: /x', Buffer.from('/x'));
    const err = await withRetry(p, policy, clock.now() + 10_000, async () => {
      throw toServiceError(sent);
    }, clock).catch((e: unknown) => e);
    assert.deepEqual(p.picked, ['a']);
    assert.equal(clock.pending, 0, 'no pause was even scheduled');
    assert.ok(err instanceof StrataError);
    assert.equal(err.errno, Errno.ENOENT);
    assert.equal(err.message, 'no such file: /x');
    assert.deepEqual(err.path, Buffer.from('/x'));
  });

  test('a deadline exceeded is not retried (the time is gone), an invalid request neither', async () => {
    for (const code of [GrpcCode.DEADLINE_EXCEEDED, GrpcCode.INVALID_ARGUMENT, GrpcCode.FAILED_PRECONDITION]) {
      const clock = new FakeClock();
      const p = pool('a', 'b');
      const err = await withRetry(p, policy, clock.now() + 10_000, async () => {
        throw { code, details: 'no' };
      }, clock).catch((e: unknown) => e);
      assert.deepEqual(p.picked, ['a'], `code ${code}`);
      assert.ok(err instanceof StrataError && err.code === code);
    }
  });

  test('a call the resolver cancelled is repeated elsewhere', async () => {
    const clock = new FakeClock();
    const p = pool('draining', 'healthy');
    const got = await clock.run(
      withRetry(p, policy, clock.now() + 10_000, async (e) => {
        if (e === 'draining') throw { code: GrpcCode.CANCELLED, details: 'Call cancelled' };
        return 'ok';
      }, clock),
    );
    assert.equal(got, 'ok');
    assert.deepEqual(p.picked, ['draining', 'healthy']);
  });
});
