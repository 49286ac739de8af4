/** A terminal the progress line is drawn on (process.stderr when it is a TTY; a fake in tests). */
export interface ProgressStream {
  write(text: string): unknown;
  /** Width of the terminal; 0 or undefined when unknown (the line is then not cut). */
  columns?: number;
}

/** Time and a repeating timer, so tests can drive the printer without waiting. */
export interface ProgressTimers {
  now(): number;
  every(ms: number, fn: () => void): () => void;
}

export const systemTimers: ProgressTimers = {
  now: () => Date.now(),
  every: (ms, fn) => {
    const t = setInterval(fn, ms);
    // A progress line never keeps the process alive.
    t.unref();
    return () => clearInterval(t);
  },
};

/** Redraws at most this often (10 per second). */
export const PROGRESS_INTERVAL_MS = 100;

const ERASE = '\r\x1b[K';

/** Lines on screen now, so a program that must exit at once (stdout closed) can take them down first. */
const live = new Set<ProgressLine>();

/** Erases every progress line still shown. */
export function eraseProgress(): void {
  for (const line of [...live]) line.done();
}

function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * One status line on a terminal for a command that may run for seconds:
 * "walk: 12,345 entries, 3.2 s". Drawn from a timer, never from the data
 * path, so it costs nothing per entry and redraws at most 10 times a
 * second; the first frame comes one interval after start, so a command that
 * finishes at once draws nothing. done() erases it.
 */
export class ProgressLine {
  private counted = 0;
  private visible = false;
  private drawn = '';
  private readonly startedAt: number;
  private stop: (() => void) | undefined;

  constructor(
    private readonly stream: ProgressStream,
    private readonly label: string,
    private readonly unit: [one: string, many: string],
    private readonly timers: ProgressTimers = systemTimers,
  ) {
    this.startedAt = timers.now();
    this.stop = timers.every(PROGRESS_INTERVAL_MS, () => this.draw());
    live.add(this);
  }

  add(n: number): void {
    this.counted += n;
  }

  get count(): number {
    return this.counted;
  }

  /** Takes the line off the screen until the next frame (before output is written to the same terminal). */
  hide(): void {
    if (!this.visible) return;
    this.stream.write(ERASE);
    this.visible = false;
    this.drawn = '';
  }

  /** Erases the line for good; safe to call twice. */
  done(): void {
    this.stop?.();
    this.stop = undefined;
    live.delete(this);
    this.hide();
  }

  /** The text of the current frame. */
  text(): string {
    const secs = (this.timers.now() - this.startedAt) / 1000;
    const noun = this.counted === 1 ? this.unit[0] : this.unit[1];
    return `${this.label}: ${thousands(this.counted)} ${noun}, ${secs.toFixed(1)} s`;
  }

  private draw(): void {
    let text = this.text();
    const width = this.stream.columns ?? 0;
    if (width > 1 && text.length >= width) text = text.slice(0, width - 1);
    if (this.visible && text === this.drawn) return;
    this.stream.write(`${ERASE}${text}`);
    this.visible = true;
    this.drawn = text;
  }
}
