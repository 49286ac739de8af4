import { Errno, errnoName } from '@strata/errors';

/**
 * How one mount is doing, from the answers its FUSE operations got: a mount
 * whose every read fails must not be listed as healthy.
 *
 * - `serving`: operations are answered (answers such as ENOENT included);
 * - `degraded`: its recent operations fail (EIO, a corrupt or missing image,
 *   a deadline) and none succeeded since;
 * - `revoked`: they fail with EACCES or EPERM (the agent's own identity lost
 *   its grant on the layer);
 * - `resolvers-away`: no resolver answers this host at all.
 */
export type MountState = 'serving' | 'degraded' | 'revoked' | 'resolvers-away';

export interface MountHealthReport {
  state: MountState;
  /** Failed operations in a row, with no success since. */
  consecutiveFailures: number;
  /** Operations answered and failed in the last minute. */
  recent: { answered: number; failed: number };
  lastError?: { errno: string; message: string; at: string };
  lastAnswerAt?: string;
}

/** Errors that are answers about the tree, not failures to serve it. */
const ANSWERS: ReadonlySet<number> = new Set([
  Errno.ENOENT,
  Errno.ENOTDIR,
  Errno.EISDIR,
  Errno.ENODATA,
  Errno.ERANGE,
  Errno.ENAMETOOLONG,
  Errno.EINVAL,
  Errno.ELOOP,
  Errno.EOPNOTSUPP,
]);
const DENIED: ReadonlySet<number> = new Set([Errno.EACCES, Errno.EPERM]);
/** Failures in a row (nothing answered since) that make a mount degraded. */
export const DEGRADED_AFTER = 3;
const WINDOW_MS = 60_000;
const BUCKET_MS = 5_000;
const BUCKETS = WINDOW_MS / BUCKET_MS;

/** Whether an errno from a handler is an answer (the tree says so) rather than a failure to serve. */
export function isAnswer(errno: number): boolean {
  return ANSWERS.has(errno);
}

export class MountHealth {
  private consecutive = 0;
  private lastError: { errno: number; message: string; at: number } | undefined;
  private lastAnswer: number | undefined;
  /** Counts per 5-second bucket over the last minute: [answered, failed], indexed by bucket number mod BUCKETS. */
  private readonly buckets: { id: number; answered: number; failed: number }[] = Array.from({ length: BUCKETS }, () => ({ id: -1, answered: 0, failed: 0 }));

  constructor(private readonly now: () => number = Date.now) {}

  private bucket(): { id: number; answered: number; failed: number } {
    const id = Math.floor(this.now() / BUCKET_MS);
    const b = this.buckets[id % BUCKETS];
    if (b.id !== id) {
      b.id = id;
      b.answered = 0;
      b.failed = 0;
    }
    return b;
  }

  answered(): void {
    this.consecutive = 0;
    this.lastAnswer = this.now();
    this.bucket().answered++;
  }

  /** An operation ended with `errno`: an answer (ENOENT...) or a failure. */
  failed(errno: number, message: string): void {
    if (isAnswer(errno)) return this.answered();
    this.consecutive++;
    this.lastError = { errno, message, at: this.now() };
    this.bucket().failed++;
  }

  report(resolversAway: boolean): MountHealthReport {
    const from = Math.floor(this.now() / BUCKET_MS) - BUCKETS + 1;
    let answered = 0;
    let failed = 0;
    for (const b of this.buckets) {
      if (b.id < from) continue;
      answered += b.answered;
      failed += b.failed;
    }
    const failing = this.consecutive >= DEGRADED_AFTER;
    const state: MountState = resolversAway
      ? 'resolvers-away'
      : failing && this.lastError && DENIED.has(this.lastError.errno)
        ? 'revoked'
        : failing
          ? 'degraded'
          : 'serving';
    return {
      state,
      consecutiveFailures: this.consecutive,
      recent: { answered, failed },
      ...(this.lastError
        ? { lastError: { errno: errnoName(this.lastError.errno), message: this.lastError.message, at: new Date(this.lastError.at).toISOString() } }
        : {}),
      ...(this.lastAnswer !== undefined ? { lastAnswerAt: new Date(this.lastAnswer).toISOString() } : {}),
    };
  }
}
