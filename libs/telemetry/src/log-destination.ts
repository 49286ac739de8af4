import * as fs from 'node:fs';

/** What the process holds for a reader that does not keep up; lines beyond it are dropped and counted. */
export const LOG_BUFFER_BYTES = 4 << 20;
/** How long the exit flush waits for a reader that does not read (a normal stop still leaves every line). */
export const EXIT_FLUSH_MS = 2_000;
/** The longest pause between attempts to write what a full pipe held back. */
const RETRY_MAX_MS = 20;
/** One write(2) at most this much, as a pipe takes it. */
const WRITE_CHUNK = 64 << 10;

export interface LogDestinationOptions {
  fd: number;
  /** Bytes kept while the reader does not keep up (default LOG_BUFFER_BYTES). */
  bufferBytes?: number;
  /** Told, once everything held back is written, how many lines were dropped meanwhile. */
  onDropped?: (lines: number) => void;
}

/**
 * Where log lines go: written at once with write(2), as a synchronous
 * logger writes them (a process killed right after a line leaves it behind),
 * but never waiting for the reader. On a pipe or socket the descriptor is
 * non-blocking; when it is full (journald wedged, a supervisor that stopped
 * reading) lines wait here, up to `bufferBytes`, and are retried on a timer;
 * lines beyond that are dropped and counted, and the count is reported once
 * the reader has taken everything. At exit what is held is written
 * synchronously, waiting at most EXIT_FLUSH_MS for the reader.
 *
 * A regular file or a terminal stays blocking: a file has no reader to
 * stall, and Node keeps terminals blocking itself.
 */
export class LogDestination {
  private readonly fd: number;
  private readonly bound: number;
  private readonly onDropped: ((lines: number) => void) | undefined;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private droppedLines = 0;
  private retryMs = 1;
  private lastAttempt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The reader is gone (EPIPE) or the descriptor is unusable: lines go nowhere, silently. */
  private broken = false;

  constructor(options: LogDestinationOptions) {
    this.fd = options.fd;
    this.bound = options.bufferBytes ?? LOG_BUFFER_BYTES;
    this.onDropped = options.onDropped;
    makeNonBlocking(this.fd);
    register(this);
  }

  /** Lines dropped since the last report (what the next `log.dropped` will say). */
  get dropped(): number {
    return this.droppedLines;
  }

  /** Bytes waiting for the reader. */
  get pending(): number {
    return this.heldBytes;
  }

  /** pino's entry point: one line (or a few) per call; never blocks on the reader, never throws. */
  write(text: string): boolean {
    if (this.broken) return true;
    // A reader that is only slow takes some of what is held as lines come, not only on the timer; a refused
    // attempt costs an exception, so at most one a millisecond.
    if (this.held.length > 0) {
      const now = performance.now();
      if (now - this.lastAttempt >= 1) {
        this.lastAttempt = now;
        this.writeHeld();
        if (this.broken) return true;
      }
    }
    if (this.held.length === 0) {
      // The common case: the reader keeps up and the line goes out whole, with no copy of our own.
      const written = this.tryWrite(text);
      if (this.broken || written === Buffer.byteLength(text, 'utf8')) return true;
      const data = Buffer.from(text, 'utf8');
      this.hold(written === 0 ? data : data.subarray(written));
      return false;
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    if (this.heldBytes + bytes > this.bound) {
      this.droppedLines += lineCount(text);
      return false;
    }
    this.hold(Buffer.from(text, 'utf8'));
    return false;
  }

  /**
   * Writes what is held, synchronously, waiting up to `waitMs` for a
   * reader that does not take it; whatever is left then is dropped.
   * Returns whether everything was written.
   */
  flushSync(waitMs = EXIT_FLUSH_MS): boolean {
    this.stopTimer();
    const end = Date.now() + waitMs;
    let reported = false;
    for (;;) {
      while (this.held.length > 0 && !this.broken) {
        if (this.writeHeld() > 0) continue;
        if (this.broken || Date.now() >= end) break;
        sleepSync(5);
      }
      // Lines dropped and not yet reported: said in one last line (once), written as the rest.
      if (this.held.length > 0 || this.broken || reported || this.droppedLines === 0) break;
      reported = true;
      const dropped = this.droppedLines;
      this.droppedLines = 0;
      this.onDropped?.(dropped);
    }
    this.stopTimer();
    const done = this.held.length === 0;
    this.held = [];
    this.heldBytes = 0;
    return done;
  }

  private hold(data: Buffer): void {
    this.held.push(data);
    this.heldBytes += data.length;
    this.schedule();
  }

  /** Writes from the front of what is held until the descriptor takes no more; the bytes written. */
  private writeHeld(): number {
    let total = 0;
    while (this.held.length > 0) {
      const chunk = this.held.length === 1 || this.held[0].length >= WRITE_CHUNK ? this.held[0] : this.coalesce();
      const n = this.tryWrite(chunk);
      if (n === 0) break;
      total += n;
      this.heldBytes -= n;
      if (n === chunk.length) this.held.shift();
      else {
        this.held[0] = chunk.subarray(n);
        break;
      }
    }
    return total;
  }

  /** The first held buffers joined (up to WRITE_CHUNK) into one, so a line costs no write(2) of its own. */
  private coalesce(): Buffer {
    let take = 0;
    let bytes = 0;
    while (take < this.held.length && bytes + this.held[take].length <= WRITE_CHUNK) bytes += this.held[take++].length;
    if (take <= 1) return this.held[0];
    const joined = Buffer.concat(this.held.slice(0, take), bytes);
    this.held.splice(0, take, joined);
    return joined;
  }

  /** Bytes the descriptor took now: 0 when it is full (EAGAIN) or gone (then broken). */
  private tryWrite(data: Buffer | string): number {
    try {
      return typeof data === 'string' ? fs.writeSync(this.fd, data, null, 'utf8') : fs.writeSync(this.fd, data);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR') return 0;
      // EPIPE (the reader went away), EBADF: nobody will read these lines; the process goes on.
      this.broken = true;
      this.held = [];
      this.heldBytes = 0;
      this.stopTimer();
      return 0;
    }
  }

  private schedule(): void {
    if (this.timer !== undefined || this.broken) return;
    // Unref'd: a process with nothing else to do exits, and the exit flush writes what is held.
    this.timer = setTimeout(() => this.retry(), this.retryMs).unref();
  }

  private retry(): void {
    this.timer = undefined;
    const progressed = this.writeHeld() > 0;
    if (this.held.length > 0) {
      this.retryMs = progressed ? 1 : Math.min(this.retryMs * 2, RETRY_MAX_MS);
      this.schedule();
      return;
    }
    this.retryMs = 1;
    const dropped = this.droppedLines;
    if (dropped === 0) return;
    this.droppedLines = 0;
    this.onDropped?.(dropped);
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function lineCount(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return Math.max(n, 1);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * A pipe or socket on stdout/stderr made non-blocking the way Node itself
 * does it when process.stderr is first used (libuv opens it as a stream):
 * a write(2) to a full pipe then fails with EAGAIN instead of waiting.
 * Other descriptors are left as they are.
 */
function makeNonBlocking(fd: number): void {
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(fd);
  } catch {
    return;
  }
  if (!stat.isFIFO() && !stat.isSocket()) return;
  if (fd === 2) void process.stderr;
  else if (fd === 1) void process.stdout;
}

/** Every live destination, flushed once at exit (one listener however many loggers a process makes). */
const live = new Set<WeakRef<LogDestination>>();
let exitHooked = false;

function register(d: LogDestination): void {
  for (const ref of live) if (ref.deref() === undefined) live.delete(ref);
  live.add(new WeakRef(d));
  if (exitHooked) return;
  exitHooked = true;
  // 'exit' also follows process.exit() (the services' SIGTERM and SIGINT handlers end with it) and an uncaught exception.
  process.on('exit', () => {
    const end = Date.now() + EXIT_FLUSH_MS;
    for (const ref of live) ref.deref()?.flushSync(Math.max(0, end - Date.now()));
  });
}
