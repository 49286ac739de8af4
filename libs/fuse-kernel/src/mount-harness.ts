/**
 * What the mount tests share. The mount is served by this very process:
 * its reader threads answer what the native cache holds, but a miss waits
 * for this JavaScript thread. So the tests look at the mount only from
 * child processes, spawned asynchronously (spawnSync would hold the thread
 * the child's request waits for), except where a test means to block it.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addon } from './native';
import { FuseSession } from './session';
import type { ToyFs } from './toy-fs';
import type { MountOptions } from './types';

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** Date.now() when the child exited. */
  endedAt: number;
}

/** Why mount tests cannot run here, or undefined when they can. */
export function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync('/dev/fuse')) return 'needs /dev/fuse';
  return undefined;
}

/** Runs a command without blocking this thread; kills it after timeoutMs. */
export function run(
  cmd: string,
  args: readonly string[],
  options: { timeoutMs?: number; input?: Buffer | string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? { ...process.env, TZ: 'UTC', LC_ALL: 'C' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString(), endedAt: Date.now() });
    });
    child.stdin.on('error', () => undefined); // a child that exits before reading its input
    child.stdin.end(options.input ?? '');
  });
}

/** Runs a node script in a child (argv after the script go to process.argv[1..]). */
export function runNode(script: string, args: readonly string[] = [], options: { timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, ['-e', script, '--', ...args], options);
}

/** A fresh empty directory to mount on, and its removal (after a lazy umount2 of whatever is left there). */
export function tempMountpoint(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fuse-kernel-'));
  return {
    path: dir,
    remove: () => {
      addon().umount(dir); // EINVAL when nothing is mounted there
      try {
        rmdirSync(dir); // never recursive: a mount still there would be walked on this thread
      } catch {
        // still busy: left behind rather than failing the suite
      }
    },
  };
}

/** Unmounts a session and removes its mountpoint, whatever state either is in. */
export async function cleanUp(session: FuseSession | undefined, mountpoint: { remove: () => void } | undefined): Promise<void> {
  try {
    await session?.unmount();
  } finally {
    mountpoint?.remove();
  }
}

/** Busy-waits (the event loop does not run) for ms. */
export function blockFor(ms: number): number {
  const end = Date.now() + ms;
  let spins = 0;
  while (Date.now() < end) spins++;
  return spins;
}

/** `work`, or an error naming `what` after `timeoutMs`: a test never hangs on a child, a session or an event. */
export async function within<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([work, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls until predicate holds (or throws after timeoutMs). */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** This process's open descriptors: a registration that dups, or a close that leaks, shows here. */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Reads [offset, length] pairs (argv[2], JSON) of argv[1]; prints each read's bytes as base64, one per line. */
const READ_RANGES = `const fs = require('fs'); const fd = fs.openSync(process.argv[1], 'r');
  for (const [off, len] of JSON.parse(process.argv[2])) {
    const b = Buffer.alloc(len); const n = fs.readSync(fd, b, 0, len, off);
    process.stdout.write(b.subarray(0, n).toString('base64') + '\\n');
  }`;

/** The bytes of each [offset, length] range of `path`, read by a child process (never this one: it serves the mount). */
export async function readRanges(path: string, ranges: ReadonlyArray<readonly [number, number]>): Promise<Buffer[]> {
  const r = await runNode(READ_RANGES, [path, JSON.stringify(ranges)], { timeoutMs: 30_000 });
  if (r.status !== 0) throw new Error(`reading ranges of ${path} failed: ${r.stderr.toString()}`);
  return r.stdout
    .toString()
    .split('\n')
    .slice(0, ranges.length)
    .map((l) => Buffer.from(l, 'base64'));
}

/** A ToyFs mounted by this process over a directory of backing ("store") files to register as its files' data. */
export interface StoreMount {
  session: FuseSession;
  /** The mountpoint. */
  root: string;
  /** The directory of backing files. */
  store: string;
  /** Opens the store's files `names` read-only for `work`, and closes them after it (registrations dup what they keep). */
  withFds<T>(names: readonly string[], work: (fds: number[]) => T): T;
  /** Unmounts here (a test that looks at what the unmount let go); close() then leaves the session be. */
  unmount(): Promise<void>;
  /** Unmounts (unless done), removes the mountpoint and the store, whatever state they are in. */
  close(): Promise<void>;
}

/**
 * `files` written to a store directory of their own, `toy` mounted on a
 * fresh mountpoint with its root's attributes and `options`. A failure on
 * the way removes what was made.
 */
export async function mountOverStore(toy: ToyFs, files: Readonly<Record<string, Buffer>>, options: MountOptions = {}): Promise<StoreMount> {
  const store = mkdtempSync(join(tmpdir(), 'fuse-kernel-store-'));
  const mountpoint = tempMountpoint();
  let session: FuseSession | undefined;
  const close = async (): Promise<void> => {
    try {
      await cleanUp(session, mountpoint);
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  };
  try {
    for (const [name, bytes] of Object.entries(files)) writeFileSync(join(store, name), bytes);
    session = await FuseSession.mount(mountpoint.path, toy.handlers(), { rootAttr: toy.nodes.get(1n)?.attr, ...options });
  } catch (err) {
    await close();
    throw err;
  }
  const mounted = session;
  return {
    session: mounted,
    root: mountpoint.path,
    store,
    withFds(names, work) {
      const fds: number[] = [];
      try {
        for (const n of names) fds.push(openSync(join(store, n), 'r'));
        return work(fds);
      } finally {
        fds.forEach((fd) => closeSync(fd));
      }
    },
    async unmount() {
      session = undefined;
      await mounted.unmount();
    },
    close,
  };
}

/** sha256 of `path` read by children twice: through the page cache (cat) and O_DIRECT (dd: every block a READ of the session). */
export async function shaCachedAndDirect(path: string): Promise<string[]> {
  const r = await run('sh', ['-c', `cat ${path} | sha256sum; dd if=${path} bs=1M iflag=direct status=none | sha256sum`]);
  if (r.status !== 0) throw new Error(`reading ${path} failed: ${r.stderr}`);
  return r.stdout
    .toString()
    .trim()
    .split('\n')
    .map((l) => l.split(' ')[0]);
}
