/** Cancels a timer set through a Clock; harmless once it has fired. */
export type CancelTimer = () => void;

/**
 * Time as the client sees it: deadlines, backoff and reconnect pauses. The
 * system clock in production; unit tests pass a fake one they advance by
 * hand, so they check timing without waiting for it.
 */
export interface Clock {
  now(): number;
  /** Runs fn once, ms from now. */
  after(ms: number, fn: () => void): CancelTimer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.after(ms, resolve));
}
