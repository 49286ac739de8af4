import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { fromServiceError } from '@strata/protocol';
import type { Endpoint, EndpointPool } from './endpoints';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Wait before the second attempt; doubles each time. */
  backoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, backoffMs: 50 };

/** Failures where the request may not have been served: safe to repeat a read-only call elsewhere. */
export function isRetryable(err: StrataError): boolean {
  return err.code === GrpcCode.UNAVAILABLE || (err.code === GrpcCode.CANCELLED && !err.message.includes('Cancelled on client'));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs an attempt on one endpoint after another until it succeeds, fails
 * for a reason a retry cannot fix, or the overall deadline passes. Each
 * attempt gets what is left of the deadline.
 */
export async function withRetry<T>(
  pool: EndpointPool,
  policy: RetryPolicy,
  deadline: number,
  attempt: (endpoint: Endpoint, deadline: number) => Promise<T>,
): Promise<T> {
  let last: StrataError | undefined;
  for (let i = 0; i < policy.attempts; i++) {
    if (i > 0) {
      const wait = Math.min(policy.backoffMs * 2 ** (i - 1), Math.max(0, deadline - Date.now()));
      if (wait > 0) await sleep(wait);
    }
    if (Date.now() >= deadline && last) break;
    try {
      return await attempt(pool.pick(), deadline);
    } catch (err) {
      last = fromServiceError(err);
      if (!isRetryable(last)) throw last;
    }
  }
  throw last ?? new StrataError(Errno.EIO, 'deadline passed before the first attempt', { code: GrpcCode.DEADLINE_EXCEEDED });
}
