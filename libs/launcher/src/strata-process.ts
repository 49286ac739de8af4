import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, openSync, type WriteStream } from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { Errno, StrataError } from '@strata/errors';
import { LineTail, parseLogLine, type LogLine } from './log-lines';

/** bin/strata of this checkout (this file runs from libs/launcher/dist). */
export const STRATA_BIN = path.resolve(__dirname, '../../../bin/strata');

export type StrataRole = 'resolver' | 'agent';

export interface ExitStatus {
  /** null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all. */
  error?: string;
}

/** SIGTERM lets a service drain (the resolver waits up to its --grace-ms, 10 s by default) before SIGKILL. */
export const DEFAULT_STOP_GRACE_MS = 30_000;
const TAIL_LINES = 20;
/** Services log a fixed set of event names; the cap only guards against one that does not. */
const MAX_EVENT_NAMES = 4096;
/** Tells a strata service that its stdin is a lifeline to its parent (see onShutdown in @strata/telemetry). */
export const EXIT_WITH_PARENT_ENV = 'STRATA_EXIT_WITH_PARENT';
/** How long a failure report waits for the last stderr bytes after the exit. */
const STDERR_DRAIN_MS = 1_000;

export interface LaunchOptions {
  role: StrataRole;
  /** Arguments after the role. */
  args?: readonly string[];
  /** Added to this process's environment. */
  env?: Readonly<Record<string, string>>;
  /** Flags for node itself (profiling, GC). */
  nodeArgs?: readonly string[];
  /** Every stderr line is appended here, as written. */
  logFile?: string;
  /** Called with every stderr line, parsed. */
  onLine?: (line: LogLine) => void;
  /**
   * Its own process group: a Ctrl-C in the terminal reaches only the
   * launching process, which then stops its children in order.
   */
  detached?: boolean;
  /**
   * The child stops (cleanly, as on SIGTERM) when this process is gone,
   * however it went (a crash, SIGKILL, a terminal closing a pipe): it holds
   * the read end of a pipe whose write end only this process has, and an
   * end of file on it is its parent's death.
   */
  exitWithParent?: boolean;
  /** The script node runs (default bin/strata); tests pass a stand-in. */
  bin?: string;
}

/** Resolves once the child has exited (at once if it already has). */
export function exitOf(child: ChildProcess): Promise<ExitStatus> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    // A failed spawn has no exit: 'error' is the only word of it (later errors, a failed kill, change nothing).
    child.on('error', (err) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, error: err.message });
    });
  });
}

function openLog(file: string): number {
  try {
    return openSync(file, 'a');
  } catch (err) {
    throw StrataError.from(err, `log file ${file}`);
  }
}

/** `work`, or nothing after `ms`: for waits that must not hang on a pipe someone else holds open. */
async function within(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  await Promise.race([work, bound]);
  clearTimeout(timer);
}

function describeExit(s: ExitStatus): string {
  if (s.error !== undefined) return `could not run (${s.error})`;
  return s.signal ? `killed by ${s.signal}` : `exited with ${s.code}`;
}

interface Waiter {
  event: string;
  resolve(line: LogLine): void;
}

/** A running `strata <role>` whose stderr JSON lines are watched. */
export class StrataProcess {
  readonly role: StrataRole;
  readonly child: ChildProcess;
  readonly exit: Promise<ExitStatus>;
  private readonly tail = new LineTail(TAIL_LINES);
  /** The first line of each event (a handful of names), so a wait that starts late still sees it. */
  private readonly firstOfEvent = new Map<string, LogLine>();
  private waiters: Waiter[] = [];
  private readonly stderrDone: Promise<void>;
  /** stderr has closed and every line of it is in the log file. */
  private readonly flushed: Promise<void>;
  private log: WriteStream | undefined;

  constructor(o: LaunchOptions) {
    this.role = o.role;
    const bin = o.bin ?? STRATA_BIN;
    // Opened before the spawn, so a bad log path fails the launch instead of crashing on a stream error later.
    this.log = o.logFile ? createWriteStream('', { fd: openLog(o.logFile) }) : undefined;
    // A log file that stops taking writes (disk full) loses the file, not the process: the callback and the tail go on.
    this.log?.once('error', () => (this.log = undefined));
    this.child = spawn(process.execPath, [...(o.nodeArgs ?? []), bin, o.role, ...(o.args ?? [])], {
      stdio: [o.exitWithParent ? 'pipe' : 'ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...o.env, ...(o.exitWithParent ? { [EXIT_WITH_PARENT_ENV]: '1' } : {}) },
      detached: o.detached === true,
    });
    // Never written, never closed: the pipe only has to exist for as long as this process does, without keeping it alive.
    const lifeline = this.child.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null;
    lifeline?.on('error', () => undefined);
    lifeline?.unref?.();
    this.exit = exitOf(this.child);
    const stderr = this.child.stderr;
    if (!stderr) throw StrataError.io(`strata ${o.role}: no stderr pipe`);
    this.stderrDone = new Promise((resolve) => stderr.once('close', () => resolve()));
    const onLine = o.onLine;
    readline.createInterface({ input: stderr, crlfDelay: Infinity }).on('line', (text) => {
      this.log?.write(`${text}\n`);
      this.tail.push(text);
      const line = parseLogLine(text);
      onLine?.(line);
      const event = line.event;
      if (typeof event !== 'string' || this.firstOfEvent.has(event) || this.firstOfEvent.size >= MAX_EVENT_NAMES) return;
      this.firstOfEvent.set(event, line);
      const ready = this.waiters.filter((w) => w.event === event);
      if (ready.length === 0) return;
      this.waiters = this.waiters.filter((w) => w.event !== event);
      for (const w of ready) w.resolve(line);
    });
    this.flushed = this.stderrDone.then(
      () =>
        new Promise<void>((resolve) => {
          if (this.log) this.log.end(() => resolve());
          else resolve();
        }),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines it wrote on stderr (once the pipe has drained, or after a short bound). */
  async lastLines(): Promise<string> {
    await within(this.stderrDone, STDERR_DRAIN_MS);
    return this.tail.text();
  }

  /**
   * The first line whose event is `event` (also one logged before the call).
   * Rejects with the last lines of the log if the process exits first
   * (EIO) or nothing comes within `timeoutMs` (ETIMEDOUT); either way the
   * process is left as it is: startStrata() is the start that cleans up.
   */
  waitForEvent(event: string, timeoutMs: number): Promise<LogLine> {
    const seen = this.firstOfEvent.get(event);
    if (seen) return Promise.resolve(seen);
    let timer: NodeJS.Timeout | undefined;
    let waiter: Waiter | undefined;
    const logged = new Promise<LogLine>((resolve) => {
      waiter = { event, resolve };
      this.waiters.push(waiter);
    });
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new StrataError(Errno.ETIMEDOUT, `strata ${this.role} logged no ${event} within ${timeoutMs} ms; last lines:\n${this.tail.text()}`)),
        timeoutMs,
      );
    });
    const died = this.exit.then(async (s): Promise<LogLine> => {
      // A process may log the event and exit at once: the line counts if it was in the pipe.
      const tail = await this.lastLines();
      const line = this.firstOfEvent.get(event);
      if (line) return line;
      throw StrataError.io(`strata ${this.role} ${describeExit(s)} before ${event}; last lines:\n${tail}`);
    });
    return Promise.race([logged, late, died]).finally(() => {
      clearTimeout(timer);
      this.waiters = this.waiters.filter((w) => w !== waiter);
    });
  }

  /**
   * Sends `signal` (SIGTERM by default), then SIGKILL if it has not exited
   * within `graceMs`; resolves with how it ended. Stopping a process that
   * has already exited just reports that exit.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = DEFAULT_STOP_GRACE_MS): Promise<ExitStatus> {
    if (this.running()) {
      this.child.kill(signal);
      if (signal !== 'SIGKILL') {
        await within(this.exit.then(() => undefined), graceMs);
        if (this.running()) this.child.kill('SIGKILL');
      }
    }
    const status = await this.exit;
    // Its last lines (the shutdown it logged) are in the log file before the caller moves on, e.g. exits.
    await within(this.flushed, STDERR_DRAIN_MS);
    return status;
  }
}

export interface StartOptions extends LaunchOptions {
  /** The event that says it is ready (resolver.listening, agent.ready). */
  readyEvent: string;
  readyTimeoutMs: number;
}

export interface Started {
  process: StrataProcess;
  /** The ready line (the resolver's carries its port). */
  ready: LogLine;
}

/**
 * Spawns and waits for the ready event. A process that exits first or is
 * not ready in time is killed (never left behind half-started) and the
 * promise rejects with the last lines of its log.
 */
export async function startStrata(o: StartOptions): Promise<Started> {
  const p = new StrataProcess(o);
  try {
    return { process: p, ready: await p.waitForEvent(o.readyEvent, o.readyTimeoutMs) };
  } catch (err) {
    await p.stop('SIGKILL');
    throw err;
  }
}
