import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { fromServiceError } from '@strata/protocol';
import { sleep, systemClock, type Clock } from './clock';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Wait before the second attempt; doubles each time. */
  backoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, backoffMs: 50 };

/**
 * Whether a failed read-only call may be repeated on another resolver. The
 * status says the request may not have been served (`err.retryable`:
 * UNAVAILABLE), or the call was cancelled and not by this client: a
 * resolver forced down after its drain grace period cancels the calls it did
 * not finish. grpc-js reports a cancel() of our own with the same CANCELLED
 * code, so the caller says whether it cancelled the call; the message is
 * never looked at.
 */
export function isRetryable(err: StrataError, cancelledByClient: boolean): boolean {
  return err.retryable || (err.code === GrpcCode.CANCELLED && !cancelledByClient);
}

/** Where attempts go: the next endpoint in turn (an EndpointPool). */
export interface EndpointPicker<E> {
  pick(): E;
}

/**
 * Runs an attempt on one endpoint after another until it succeeds, fails
 * for a reason a retry cannot fix, or the overall deadline passes. Each
 * attempt gets the whole deadline (grpc-js stops it there); the pause
 * between attempts doubles but never reaches past the deadline.
 */
export async function withRetry<E, T>(
  pool: EndpointPicker<E>,
  policy: RetryPolicy,
  deadline: number,
  attempt: (endpoint: E, deadline: number) => Promise<T>,
  clock: Clock = systemClock,
): Promise<T> {
  let last: StrataError | undefined;
  for (let i = 0; i < policy.attempts; i++) {
    if (i > 0) {
      const wait = Math.min(policy.backoffMs * 2 ** (i - 1), Math.max(0, deadline - clock.now()));
      if (wait > 0) await sleep(clock, wait);
    }
    if (clock.now() >= deadline && last) break;
    try {
      return await attempt(pool.pick(), deadline);
    } catch (err) {
      last = fromServiceError(err);
      // An attempt is never cancelled from here: grpc-js ends it at the deadline (DEADLINE_EXCEEDED).
      if (!isRetryable(last, false)) throw last;
    }
  }
  throw last ?? new StrataError(Errno.EIO, 'deadline passed before the first attempt', { code: GrpcCode.DEADLINE_EXCEEDED });
}
