/**
 * Measures one kernel round trip answered by the native cache against one
 * that goes through JavaScript: kernel timeouts 0, so every lstat of a
 * child process sends LOOKUP (and GETATTR) to the session.
 *
 *   node libs/fuse-kernel/dist/roundtrip-bench.js [names] [rounds]   (root)
 */
import * as os from 'node:os';
import { Errno } from '@strata/errors';
import { FuseSession } from './session';
import { runNode, tempMountpoint } from './mount-harness';
import type { Attr, FuseHandlers } from './types';

const NAMES = Number(process.argv[2] ?? 2000);
const ROUNDS = Number(process.argv[3] ?? 10);
const attrOf = (ino: bigint): Attr => ({ ino, mode: 0o100644, size: 1, mtimeNs: 1n });

const LOOP = `const fs = require('fs'); const d = process.argv[1]; const n = Number(process.argv[2]); const k = Number(process.argv[3]);
  for (let i = 0; i < n; i++) fs.lstatSync(d + '/n' + i);
  const t = process.hrtime.bigint();
  for (let r = 0; r < k; r++) for (let i = 0; i < n; i++) fs.lstatSync(d + '/n' + i);
  process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e3 / (n * k)));`;

interface Sample {
  usPerLstat: number;
  lstatPerSec: number;
  requestsPerLstat: number;
  toJsShare: number;
  /** CPU time of this (the serving) process per 1000 requests, in ms. */
  cpuMsPer1000: number;
}

async function measure(cached: boolean, parallel: number): Promise<Sample> {
  const handlers: FuseHandlers = {
    lookup: (_parent, name) => {
      const m = /^n(\d+)$/.exec(name.toString());
      if (!m) return -Errno.ENOENT;
      const ino = 100n + BigInt(m[1]);
      return { ino, attr: attrOf(ino) };
    },
    getattr: (ino) => ({ attr: attrOf(ino) }),
    readdir: () => -Errno.EACCES,
    read: () => -Errno.EIO,
  };
  const mnt = tempMountpoint();
  const session = await FuseSession.mount(mnt.path, handlers, {
    entryTimeout: 0,
    attrTimeout: 0,
    rootAttr: { mode: 0o040755 },
    threads: Number(process.env.THREADS ?? 4),
  });
  try {
    if (cached) {
      for (let i = 0; i < NAMES; i++) {
        const ino = 100n + BigInt(i);
        session.cacheEntry(1n, Buffer.from(`n${i}`), { ino, attr: attrOf(ino), entryTimeout: 0, attrTimeout: 0 });
      }
    }
    const before = session.stats();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const runs = await Promise.all(
      Array.from({ length: parallel }, () => runNode(LOOP, [mnt.path, String(NAMES), String(ROUNDS)], { timeoutMs: 300_000 })),
    );
    const wallUs = Number(process.hrtime.bigint() - t0) / 1e3;
    const cpu = process.cpuUsage(cpu0);
    const after = session.stats();
    const perOp = runs.map((r) => Number(r.stdout.toString()));
    const ops = NAMES * (ROUNDS + 1) * parallel;
    const requests = after.requests - before.requests;
    return {
      usPerLstat: perOp.reduce((a, b) => a + b, 0) / perOp.length,
      lstatPerSec: (ops / wallUs) * 1e6,
      requestsPerLstat: requests / ops,
      toJsShare: (after.toJs - before.toJs) / Math.max(1, requests),
      cpuMsPer1000: ((cpu.user + cpu.system) / 1e3 / Math.max(1, requests)) * 1000,
    };
  } finally {
    await session.unmount();
    mnt.remove();
  }
}

const REPEAT = Number(process.env.REPEAT ?? 5);

async function report(label: string, cached: boolean, parallel: number): Promise<void> {
  const samples: Sample[] = [];
  for (let i = 0; i < REPEAT; i++) samples.push(await measure(cached, parallel));
  samples.sort((a, b) => a.usPerLstat - b.usPerLstat);
  const median = samples[Math.floor(samples.length / 2)];
  const best = samples[0];
  console.log(
    `${label.padEnd(32)} median ${median.usPerLstat.toFixed(1).padStart(6)} µs/lstat (best ${best.usPerLstat.toFixed(1)}), ` +
      `${median.lstatPerSec.toFixed(0).padStart(6)} lstat/s, ${median.requestsPerLstat.toFixed(2)} req/lstat, ` +
      `${(median.toJsShare * 100).toFixed(0)}% to JS, serving CPU ${median.cpuMsPer1000.toFixed(1)} ms/1000 req`,
  );
}

async function main(): Promise<void> {
  console.log(`${NAMES} names x ${ROUNDS} rounds, kernel timeouts 0, ${REPEAT} runs each, load ${os.loadavg()[0].toFixed(1)}`);
  await report('native cache, 1 process', true, 1);
  await report('through JavaScript, 1 process', false, 1);
  await report('native cache, 2 processes', true, 2);
  await report('through JavaScript, 2 processes', false, 2);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
