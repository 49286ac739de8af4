import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent } from '@strata/agent';
import { canMountFuse, startResolver, type ResolverProcess } from '@strata/harness';
import { createLogger } from '@strata/telemetry';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { wideStack } from '../support/wide-fixture';
import { within } from '../support/bounded';

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';

/**
 * One reader process: for `ms`, lstat and read paths of both mounts in a
 * random order, and report every operation's end time and latency.
 */
const READER = `
const fs = require('node:fs');
const [ms, ...paths] = JSON.parse(process.argv[1]);
const ends = [], lat = [];
const stop = Date.now() + ms;
let i = 0;
while (Date.now() < stop) {
  const p = paths[(Math.random() * paths.length) | 0];
  const t = process.hrtime.bigint();
  // Metadata only: a file's data comes from the kernel's page cache, which another test's drop_caches
  // (machine-wide) may empty at any moment and then asks the agent's JavaScript for; names and
  // attributes are the agent's own native cache, which is what this test is about.
  const st = fs.lstatSync(p);
  if (st.isDirectory()) fs.readdirSync(p);
  lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  ends.push(Date.now());
}
process.stdout.write(JSON.stringify({ ends, lat }));
`;

function p99(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? NaN;
}

/** node `args` to its end (killed, and the wait failed, after 5 minutes: far past a busy mount's legitimate pace). */
function run(args: string[]): Promise<{ code: number | null; out: string }> {
  const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ code: number | null; out: string }>((resolve) => c.on('close', (code) => resolve({ code, out })));
  return within(`node ${args[0] === '-e' ? 'script' : args.join(' ')} to finish`, done, 300_000).catch((err: unknown) => {
    c.kill('SIGKILL');
    throw err;
  });
}

let fx: StoreFixture;
let resolver: ResolverProcess;
let agent: Agent | undefined;
let work: string;
const mounts: string[] = [];

before(async () => {
  if (skip) return;
  fx = await makeStore(wideStack(20, 25), 'trusted');
  resolver = await startResolver({ store: fx.store });
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-busy-'));
  agent = await Agent.start({
    resolver: resolver.address,
    stateFile: path.join(work, 'agent.mounts.json'),
    deadlineMs: 3000,
    chunkCacheBytes: 64 << 20,
    attrEntries: 100_000,
    prefetchEntries: 100_000,
    sealedTimeoutSeconds: 3600,
    log: createLogger({ service: 'agent', level: 'warn' }),
  });
  for (const name of ['a', 'b']) {
    const dir = path.join(work, name);
    fs.mkdirSync(dir);
    await agent.mount(fx.layers[fx.layers.length - 1].name, dir);
    mounts.push(dir);
  }
});

after(async () => {
  await agent?.stop();
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
  fx?.cleanup();
});

test('cached operations keep their latency while the agent JavaScript thread is busy; nothing deadlocks', { skip }, async () => {
  // Every path once from a child (the mounts are this process's own: never touched from here).
  const listing = await run(['-e', `const fs=require('node:fs');const out=[];for(const m of ${JSON.stringify(mounts)}){for(const e of fs.readdirSync(m,{recursive:true}))out.push(m+'/'+e);}for(const p of out){if(fs.lstatSync(p).isFile())fs.readFileSync(p);}process.stdout.write(JSON.stringify(out))`]);
  assert.equal(listing.code, 0);
  const paths = JSON.parse(listing.out) as string[];
  assert.ok(paths.length > 500, `${paths.length} paths`);

  const readers = Array.from({ length: 8 }, () => run(['-e', READER, JSON.stringify([4000, ...paths])]));
  // The agent's thread is held for 2 s of allocation and collection: no cached answer may wait for it.
  await new Promise((r) => setTimeout(r, 500));
  const busyFrom = Date.now();
  let junk: number[][] = [];
  while (Date.now() - busyFrom < 2000) {
    junk.push(new Array(10_000).fill(junk.length));
    if (junk.length > 2000) junk = [];
  }
  const busyTo = Date.now();
  const results = await Promise.all(readers);
  let during = 0;
  const latBusy: number[] = [];
  const latAll: number[] = [];
  for (const r of results) {
    assert.equal(r.code, 0, 'every reader finishes');
    const { ends, lat } = JSON.parse(r.out) as { ends: number[]; lat: number[] };
    ends.forEach((t, i) => {
      latAll.push(lat[i]);
      if (t > busyFrom + 100 && t < busyTo - 100) {
        during++;
        latBusy.push(lat[i]);
      }
    });
  }
  const maxBusy = latBusy.reduce((m, v) => (v > m ? v : m), 0);
  console.log(
    `8 readers on 2 mounts: ${latAll.length} ops, p99 ${p99(latAll).toFixed(3)} ms; while the agent's JS thread was busy (${busyTo - busyFrom} ms): ${during} ops, p99 ${p99(latBusy).toFixed(3)} ms, max ${maxBusy.toFixed(3)} ms`,
  );
  assert.ok(during > 1000, `${during} cached operations completed while JavaScript was busy`);
  assert.ok(maxBusy < busyTo - busyFrom, 'no cached operation waited for the JavaScript thread');
});
