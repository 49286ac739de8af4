import type { ChildProcess } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Readable } from 'node:stream';

/**
 * Waits with a bound: a test that waits on a child, an event or a socket
 * fails within seconds with what it waited for, never hangs the suite.
 */

/** The default bound of a wait in a test: long past any legitimate wait on a loaded machine. */
export const WAIT_MS = 30_000;

export class WaitTimeout extends Error {
  constructor(what: string, ms: number, detail = '') {
    super(`timed out after ${ms} ms waiting for ${what}${detail ? `: ${detail}` : ''}`);
    this.name = 'WaitTimeout';
  }
}

/** `work`, or a WaitTimeout naming `what` after `ms`; `detail` (called at the timeout) says what was seen meanwhile. */
export function within<T>(what: string, work: Promise<T>, ms = WAIT_MS, detail?: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeout(what, ms, detail?.())), ms);
  });
  return Promise.race([work, bound]).finally(() => clearTimeout(timer));
}

/** The arguments of the next `event` of `emitter`; an 'error' event rejects unless it is the event awaited. */
export function onceWithin(emitter: EventEmitter, event: string, what: string, ms = WAIT_MS): Promise<unknown[]> {
  let cleanup = (): void => {};
  const work = new Promise<unknown[]>((resolve, reject) => {
    const onEvent = (...args: unknown[]): void => {
      cleanup();
      resolve(args);
    };
    const onError = (err: unknown): void => {
      cleanup();
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    emitter.once(event, onEvent);
    if (event !== 'error') emitter.once('error', onError);
    cleanup = () => {
      emitter.off(event, onEvent);
      emitter.off('error', onError);
    };
  });
  return within(what, work, ms).finally(() => cleanup());
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The child's exit status; at the bound the child is killed (SIGKILL) and the wait rejects. */
export function exitWithin(child: ChildProcess, what: string, ms = WAIT_MS): Promise<ChildExit> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  const work = new Promise<ChildExit>((resolve, reject) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', reject);
  });
  return within(what, work, ms).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
}

/**
 * Resolves with everything `stream` has given once it has given something; rejects when it ends first
 * (a child that died: `why` says what it printed elsewhere) or at the bound.
 */
export function firstOutput(stream: Readable, what: string, ms = WAIT_MS, why: () => string = () => ''): Promise<string> {
  let cleanup = (): void => {};
  const work = new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer | string): void => {
      cleanup();
      resolve(d.toString());
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(`${what}: the stream ended before any output${why() ? `; ${why()}` : ''}`));
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
    };
  });
  return within(what, work, ms, why).finally(() => cleanup());
}

/** A connected socket to `path` (a unix socket) or rejects with the connect error or at the bound. */
export async function connectWithin(target: string | { port: number; host: string }, what: string, ms = WAIT_MS): Promise<net.Socket> {
  const s = typeof target === 'string' ? net.connect(target) : net.connect(target.port, target.host);
  try {
    await onceWithin(s, 'connect', what, ms);
    return s;
  } catch (err) {
    s.destroy();
    throw err;
  }
}
