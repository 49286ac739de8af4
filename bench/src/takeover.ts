import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAgent, startResolver, strata, waitFor, type AgentProcess } from '@strata/harness';

/**
 * `node bench/dist/takeover.js` (root, /dev/fuse): how long a mount's
 * readers wait when its agent goes away and the next one takes the mount
 * over. A reader process reads 4 KiB at random from the files of a `dir:`
 * layer with O_DIRECT (every read reaches the FUSE session, never the page
 * cache) and notes when each read ends; the agent is SIGKILLed (a crash) or
 * SIGTERMed (an upgrade) and a new agent on the same socket started at once.
 *
 *   pause         the longest time no read was answered, from the signal
 *                 on (the old agent dying or handing over, the new one
 *                 starting and taking over): what a reader sees as the stall
 *   longest stall the longest single read of the whole run
 *   failed        reads that ended in an error (should be 0)
 *
 * STRATA_BENCH_RUNS (default 5) rounds of each.
 */
const RUNS = Number(process.env.STRATA_BENCH_RUNS ?? 5);
const FILES = 64;
const FILE_BYTES = 1 << 20;

/** The reader: one JSON line per read that ended after `since` (ms epoch, from stdin's first line), and a summary at SIGTERM. */
const READER = `
const fs = require('fs');
const files = JSON.parse(process.argv[1]);
const fds = files.map((f) => fs.openSync(f, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
const buf = Buffer.alloc(4096);
let reads = 0, failed = 0, longest = 0; const ends = [];
let stop = false;
process.on('SIGTERM', () => { stop = true; });
(async function loop() {
  while (!stop) {
    const fd = fds[Math.floor(Math.random() * fds.length)];
    const at = Math.floor(Math.random() * (${FILE_BYTES} / 4096)) * 4096;
    const t0 = Date.now();
    await new Promise((res) => fs.read(fd, buf, 0, 4096, at, (err) => { if (err) failed++; else reads++; res(); }));
    const t1 = Date.now();
    longest = Math.max(longest, t1 - t0);
    ends.push(t1);
    if (ends.length > 200000) ends.splice(0, 100000);
  }
  process.stdout.write(JSON.stringify({ reads, failed, longest, ends }) + '\\n');
})();
`;

interface Round {
  signal: NodeJS.Signals;
  pauseMs: number;
  longestMs: number;
  reads: number;
  failed: number;
}

async function round(signal: NodeJS.Signals, resolver: string, socket: string, files: string[], agentRef: { a: AgentProcess }): Promise<Round> {
  const reader = spawn(process.execPath, ['-e', READER, JSON.stringify(files)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  reader.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const done = new Promise<void>((r) => reader.once('exit', () => r()));
  await new Promise((r) => setTimeout(r, 1000));
  const at = Date.now();
  await agentRef.a.stop(signal);
  agentRef.a = await startAgent({ resolver, socket, takeover: true, extra: ['--prefetch-entries', '0'] });
  await waitFor('the mount taken over', () => agentRef.a.logs.find((l) => l.event === 'agent.mount_taken_over'), 30_000);
  await new Promise((r) => setTimeout(r, 1000));
  reader.kill('SIGTERM');
  const timer = setTimeout(() => reader.kill('SIGKILL'), 30_000);
  await done;
  clearTimeout(timer);
  const r = JSON.parse(out) as { reads: number; failed: number; longest: number; ends: number[] };
  // Reads are back to back: the widest gap between two answers after the signal is the pause (from the signal if none came before it ended).
  let last = at;
  let pause = 0;
  for (const t of r.ends) {
    if (t < at) continue;
    pause = Math.max(pause, t - last);
    last = t;
  }
  return { signal, pauseMs: pause, longestMs: r.longest, reads: r.reads, failed: r.failed };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0 || !fs.existsSync('/dev/fuse')) throw new Error('needs root and /dev/fuse');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bench-takeover-'));
  const store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'layers/data'), { recursive: true });
  for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(store, 'layers/data', `f${i}.bin`), Buffer.alloc(FILE_BYTES, i));
  const resolver = await startResolver({ store });
  const socket = path.join(work, 'agent.sock');
  const mnt = path.join(work, 'mnt');
  fs.mkdirSync(mnt);
  const ref = { a: await startAgent({ resolver: resolver.address, socket, takeover: true, extra: ['--prefetch-entries', '0'] }) };
  const rounds: Round[] = [];
  try {
    const c = strata(['layer', 'create', '--source', 'dir:layers/data', '--name', 'data'], { STRATA_RESOLVER: resolver.address });
    if (c.status !== 0) throw new Error(c.stderr);
    ref.a.mount('data', mnt);
    const files = Array.from({ length: FILES }, (_, i) => path.join(mnt, `f${i}.bin`));
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      for (let i = 0; i < RUNS; i++) rounds.push(await round(signal, resolver.address, socket, files, ref));
    }
  } finally {
    spawnSync(process.execPath, [path.join(__dirname, '../../bin/strata'), 'umount', mnt, '--socket', socket], { stdio: 'ignore', timeout: 30_000 });
    await ref.a.stop('SIGKILL');
    await resolver.stop();
    spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
    fs.rmSync(work, { recursive: true, force: true });
  }
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  console.log(`# takeover — ${when} UTC, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}, node ${process.version}`);
  console.log('| signal | pause (no read answered) | longest read | reads | failed |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const r of rounds) console.log(`| ${r.signal} | ${r.pauseMs} ms | ${r.longestMs} ms | ${r.reads} | ${r.failed} |`);
  for (const s of ['SIGKILL', 'SIGTERM']) {
    const t = rounds.filter((r) => r.signal === s).map((r) => r.pauseMs).sort((a, b) => a - b);
    console.log(`# ${s}: median pause ${t[Math.floor(t.length / 2)]} ms (${t[0]}–${t[t.length - 1]}); failed reads ${rounds.filter((r) => r.signal === s).reduce((n, r) => n + r.failed, 0)}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
