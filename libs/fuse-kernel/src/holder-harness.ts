/**
 * What the holder tests share: a strata-fd-holder started by the test
 * itself (so its pid, exit and JSON log lines are the test's to see), and
 * bounded waits on them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { holderBinary } from './holder-client';

export interface LogEvent {
  event: string;
  [key: string]: unknown;
}

export interface TestHolder {
  child: ChildProcess;
  socket: string;
  logs: LogEvent[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first log event of that name (and matching `where`), or rejects after timeoutMs. */
  waitLog(event: string, timeoutMs?: number, where?: (e: LogEvent) => boolean): Promise<LogEvent>;
  stop(): Promise<void>;
}

export function holderSkipReason(): string | undefined {
  return existsSync(holderBinary()) ? undefined : 'strata-fd-holder is not built';
}

export function tempDir(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'strata-holder-'));
  return { path: dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function startHolder(socket: string, args: readonly string[] = []): TestHolder {
  const child = spawn(holderBinary(), ['--socket', socket, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs: LogEvent[] = [];
  const waiters: Array<() => void> = [];
  let partial = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      logs.push(JSON.parse(line) as LogEvent);
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  // A holder a test forgot is not left behind past the run.
  const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
  guard.unref();
  void exited.then(() => clearTimeout(guard));
  const holder: TestHolder = {
    child,
    socket,
    logs,
    exited,
    waitLog(event, timeoutMs = 5000, where = () => true) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${event} log line within ${timeoutMs} ms; got ${JSON.stringify(logs.map((l) => l.event))}`)), timeoutMs);
        const check = (): void => {
          const found = logs.find((l) => l.event === event && where(l));
          if (found) {
            clearTimeout(timer);
            resolve(found);
          } else {
            waiters.push(check);
          }
        };
        check();
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
  return holder;
}

/** Resolves when the holder listens (its start line), bounded. */
export async function started(holder: TestHolder): Promise<TestHolder> {
  await holder.waitLog('holder.start');
  return holder;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
