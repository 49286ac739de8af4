import * as fs from 'node:fs';
import { rssOf } from '@strata/harness';

/**
 * Samples a process's resident set size every `everyMs` until stopped, so a
 * test asserts on the real peak rather than on one sample it hopes is it.
 */
export function sampleRss(pid: number, everyMs = 10): { readonly peak: number; readonly samples: number; stop(): number } {
  let peak = rssOf(pid);
  let samples = 1;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssOf(pid));
    samples++;
  }, everyMs);
  return {
    get peak() {
      return peak;
    },
    get samples() {
      return samples;
    },
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rssOf(pid));
      return peak;
    },
  };
}

/** Bytes a process has read through read(2) and friends so far (/proc/<pid>/io rchar): files and sockets alike. */
export function bytesReadBy(pid: number): number {
  const m = /^rchar:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves once a process has gone quiet: over the last `quietMs` it read
 * fewer than `quietBytes` (its background timers read a few bytes; serving
 * a request reads far more). Polls every `everyMs`; fails after timeoutMs.
 */
export async function untilQuiet(pid: number, o: { quietBytes: number; quietMs: number; timeoutMs: number; everyMs?: number }): Promise<void> {
  const every = o.everyMs ?? 20;
  const window = Math.ceil(o.quietMs / every);
  const readings: number[] = [bytesReadBy(pid)];
  const end = Date.now() + o.timeoutMs;
  while (Date.now() < end) {
    await sleepMs(every);
    readings.push(bytesReadBy(pid));
    if (readings.length > window && readings[readings.length - 1] - readings[readings.length - 1 - window] < o.quietBytes) return;
  }
  throw new Error(`process ${pid} still busy after ${o.timeoutMs} ms`);
}
