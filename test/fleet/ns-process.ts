import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { STRATA_BIN, parseLogLine } from '@strata/harness';
import { inNetns } from './netns';

/** One stderr line of a strata service (pino JSON), or its text when it is not JSON. */
export type Line = Record<string, unknown> & { event?: string; level?: number | string; text?: string };


export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface NsProcessOptions {
  /** For messages: `resolver res0`, `reader host2`. */
  name: string;
  netns: string;
  argv: string[];
  /** stderr (and stdout unless captured) is appended here as written. */
  logFile: string;
  env?: Record<string, string>;
  /** Keep stdout in memory (a reader's JSON summary) instead of logging it. */
  captureStdout?: boolean;
  /** Called with each stdout line (with captureStdout). */
  onStdoutLine?: (line: string) => void;
  /**
   * Hold the read end of a pipe as stdin and set STRATA_EXIT_WITH_PARENT:
   * a strata service stops cleanly (unmounting) when this process dies,
   * however it died.
   */
  lifeline?: boolean;
}

/** At most this many parsed lines are kept per process (the log file has all of them). */
const KEPT_LINES = 20_000;

/**
 * A process in a network namespace (nsenter execs it: its pid is the
 * process's own, so a signal reaches the program, not a wrapper).
 */
export class NsProcess {
  readonly child: ChildProcess;
  readonly exit: Promise<Exit>;
  readonly lines: Line[] = [];
  stdout = '';
  private readonly log: fs.WriteStream;
  private waiters: { test: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  private readonly closed: Promise<void>;

  constructor(readonly o: NsProcessOptions) {
    this.log = fs.createWriteStream(o.logFile, { flags: 'a' });
    this.log.on('error', () => undefined);
    const [cmd, ...args] = inNetns(o.netns, o.argv);
    this.child = spawn(cmd, args, {
      stdio: [o.lifeline ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...o.env, ...(o.lifeline ? { STRATA_EXIT_WITH_PARENT: '1' } : {}) },
      // Its own process group: a Ctrl-C reaches only the fleet, which then stops everything in order.
      detached: true,
    });
    const stdin = this.child.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null;
    stdin?.on('error', () => undefined);
    // Never written: it only has to exist as long as this process does, without keeping it alive.
    stdin?.unref?.();
    this.exit = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
      this.child.once('error', (err) => {
        this.log.write(`spawn failed: ${err.message}\n`);
        if (this.child.pid === undefined) resolve({ code: 127, signal: null });
      });
    });
    const out = this.child.stdout!;
    if (o.captureStdout) {
      out.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
      const onLine = o.onStdoutLine;
      if (onLine) readline.createInterface({ input: out, crlfDelay: Infinity }).on('line', onLine);
    } else out.on('data', (d: Buffer) => this.log.write(d));
    const err = this.child.stderr!;
    this.closed = new Promise((resolve) => err.once('close', () => resolve()));
    readline.createInterface({ input: err, crlfDelay: Infinity }).on('line', (text) => {
      this.log.write(`${text}\n`);
      const line: Line = parseLogLine(text);
      if (this.lines.length < KEPT_LINES) this.lines.push(line);
      const hit = this.waiters.filter((w) => w.test(line));
      if (hit.length === 0) return;
      this.waiters = this.waiters.filter((w) => !hit.includes(w));
      for (const w of hit) w.resolve(line);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  events(name: string): Line[] {
    return this.lines.filter((l) => l.event === name);
  }

  /** The last lines, for an error message. */
  tail(n = 15): string {
    return this.lines
      .slice(-n)
      .map((l) => (l.event === 'non-json' ? String(l.text) : JSON.stringify(l)))
      .join('\n');
  }

  /** The first line (already logged or to come) that `test` accepts; rejects on exit or after `timeoutMs`. */
  waitFor(what: string, test: (l: Line) => boolean, timeoutMs: number): Promise<Line> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    let timer: NodeJS.Timeout | undefined;
    let waiter: (typeof this.waiters)[number] | undefined;
    const logged = new Promise<Line>((resolve) => {
      waiter = { test, resolve };
      this.waiters.push(waiter);
    });
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.o.name}: no ${what} within ${timeoutMs} ms; last lines:\n${this.tail()}`)), timeoutMs);
    });
    const died = this.exit.then(async (s): Promise<Line> => {
      await this.drained();
      const line = this.lines.find(test);
      if (line) return line;
      throw new Error(`${this.o.name} exited (${s.signal ?? s.code}) before ${what}; last lines:\n${this.tail()}`);
    });
    return Promise.race([logged, late, died]).finally(() => {
      clearTimeout(timer);
      this.waiters = this.waiters.filter((w) => w !== waiter);
    });
  }

  waitForEvent(event: string, timeoutMs: number): Promise<Line> {
    return this.waitFor(event, (l) => l.event === event, timeoutMs);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running()) this.child.kill(signal);
  }

  /** `signal`, then SIGKILL after `graceMs`; resolves with how it ended, once its output is written. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<Exit> {
    this.kill(signal);
    if (signal !== 'SIGKILL' && this.running()) {
      const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
      await this.exit;
      clearTimeout(timer);
    }
    const status = await this.exit;
    await this.drained();
    return status;
  }

  /** stderr read to its end (bounded: a grandchild could hold the pipe). */
  private async drained(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise<void>((r) => (timer = setTimeout(r, 1_000)))]);
    clearTimeout(timer);
    await new Promise<void>((r) => this.log.write('', () => r()));
  }
}

/** `node bin/strata <role> ...` in a namespace, at debug level (failed FUSE operations are logged). */
export function strataIn(name: string, netns: string, role: 'resolver' | 'agent', args: string[], logFile: string): NsProcess {
  return new NsProcess({
    name,
    netns,
    argv: [process.execPath, STRATA_BIN, role, ...args],
    logFile,
    env: { STRATA_LOG_LEVEL: 'debug' },
    lifeline: true,
  });
}
