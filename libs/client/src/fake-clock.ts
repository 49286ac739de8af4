import type { CancelTimer, Clock } from './clock';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/** Lets promise callbacks and queued microtasks run (one turn of the event loop), without waiting on time. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A clock for unit tests: time moves only when the test says so, timers
 * fire in order of their due time, and a test can run until a promise
 * settles, jumping from one timer to the next. Nothing waits for real time.
 */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, Timer>();

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): CancelTimer {
    const id = this.seq++;
    this.timers.set(id, { id, at: this.t + Math.max(0, ms), fn });
    return () => void this.timers.delete(id);
  }

  /** Timers set and not yet fired or cancelled. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by ms, firing every timer due on the way (and those they set) in order. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (let next = this.next(end); next; next = this.next(end)) {
      this.timers.delete(next.id);
      this.t = next.at;
      next.fn();
      await settle();
    }
    this.t = end;
  }

  /** Runs timers one after another until p settles; fails if p still waits with no timer left. */
  async run<T>(p: Promise<T>): Promise<T> {
    let settled = false;
    p.then(
      () => (settled = true),
      () => (settled = true),
    );
    for (;;) {
      await settle();
      if (settled) return p;
      const next = this.next(Infinity);
      if (!next) throw new Error('the promise waits for something other than this clock');
      await this.advance(next.at - this.t);
    }
  }

  private next(until: number): Timer | undefined {
    let best: Timer | undefined;
    for (const timer of this.timers.values()) {
      if (timer.at <= until && (!best || timer.at < best.at || (timer.at === best.at && timer.id < best.id))) best = timer;
    }
    return best;
  }
}
