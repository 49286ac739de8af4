import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, canMountFuse, freePort, startAgent, waitFor, type AgentProcess, type ResolverProcess } from '@strata/harness';
import { startStoreAndAgents, type StoreAndAgents } from './store-and-agents';

/**
 * `strata agent --store-view DIR` on real processes: a sealed layer's file
 * bytes come from the store files the resolver's extent maps name, not from
 * Session reads (the resolver's own metrics say which calls it served); a
 * directory that is not the resolver's store (empty, a copy, another id)
 * stops the agent at start; a LIVE layer is still read through the resolver.
 */

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';
const MiB = 1024 * 1024;
const MARKER = '.strata/store-id';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** sha256 of a file as another process reads it (the mount is read by a child, as the house style is). */
function shaThrough(file: string): { sum?: string; err?: string } {
  const r = spawnSync('sh', ['-c', `sha256sum < '${file}'`], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? { sum: r.stdout.split(' ')[0] } : { err: r.stderr.trim() || `status ${String(r.status)} ${String(r.error ?? '')}` };
}

/** Requests the resolver served, by method (each method's latency count), from its Prometheus endpoint. */
async function served(metricsUrl: string): Promise<Map<string, number>> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5_000);
  try {
    const text = await (await fetch(metricsUrl, { signal: ctl.signal })).text();
    const out = new Map<string, number>();
    for (const m of text.matchAll(/^strata_resolver_request_duration\w*_count\{[^}]*method="([^"]+)"[^}]*\} (\d+)$/gm)) out.set(m[1], (out.get(m[1]) ?? 0) + Number(m[2]));
    return out;
  } finally {
    clearTimeout(timer);
  }
}

/** Requests of methods matching `re` served between two readings. */
function delta(before: Map<string, number>, after: Map<string, number>, re: RegExp): number {
  let n = 0;
  for (const [method, count] of after) if (re.test(method)) n += count - (before.get(method) ?? 0);
  return n;
}

const SESSION_READ = /^Session\.read$/i;
const EXTENT_MAP = /ExtentMap$/;

/** An agent started by hand (to see it fail): exit status and everything it wrote, bounded. */
function agentStartFails(resolver: string, dir: string, work: string, name: string): { status: number | null; output: string; timedOut: boolean } {
  const own = fs.mkdtempSync(path.join(work, `${name}-`));
  const r = spawnSync(
    process.execPath,
    [path.join(REPO, 'bin/strata'), 'agent', '--resolver', resolver, '--socket', path.join(own, 'agent.sock'), '--data-cache-dir', own, '--no-takeover', '--store-view', dir],
    { encoding: 'utf8', timeout: 30_000, env: { ...process.env, STRATA_LOG_LEVEL: 'debug' } },
  );
  return { status: r.status, output: `${r.stdout}\n${r.stderr}`, timedOut: r.error !== undefined };
}

describe('an agent reading sealed layers straight from the store (--store-view)', { skip }, () => {
  let rig: StoreAndAgents;
  let work: string;
  let store: string;
  let resolver: ResolverProcess;
  let agent: AgentProcess;
  let metricsUrl: string;
  const data = new Map<string, Buffer>();
  const live = new Map<string, Buffer>();

  const mountAt = (layer: string): string => {
    const mnt = rig.mountpoint(`mnt-${layer}`);
    agent.mount(layer, mnt);
    return mnt;
  };

  before(async () => {
    // Sizes around chunk and window edges: empty, one byte, odd sizes, several MiB.
    data.set('big.bin', randomBytes(5 * MiB + 4321));
    data.set('mid.bin', randomBytes(1 * MiB + 1));
    data.set('small.txt', Buffer.from('a small file\n'));
    data.set('one', Buffer.from('x'));
    data.set('empty', Buffer.alloc(0));
    data.set('sub/deeper/nested.bin', randomBytes(200_000));
    live.set('changing.bin', randomBytes(300_000));
    live.set('log.txt', Buffer.from('first line\n'));

    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    rig = await startStoreAndAgents({ prefix: 'store-view', layers: { data, live }, resolverExtra: ['--metrics-listen', `127.0.0.1:${port}`] });
    ({ work, store, resolver } = rig);
    rig.createLayers(['--source', 'dir:layers/data', '--name', 'data'], ['--source', 'dir:layers/live', '--option', 'live', '--name', 'live']);
    agent = await rig.startAgent({ extra: ['--store-view', store, '--prefetch-entries', '0', '--deadline-ms', '5000'] });
  });

  after(() => rig?.close());

  test('the agent says at start that it reads from the store, which holds the resolver\'s marker', () => {
    const line = agent.logs.find((l) => l.event === 'agent.store_view');
    assert.ok(line, 'agent.store_view logged at start');
    assert.equal(line.dir, store);
    const marker = fs.readFileSync(path.join(store, MARKER), 'utf8').trim();
    assert.equal(line.storeId, marker, 'the id it verified is the one in the store');
    // The store is a local folder here: the agent sees it on the resolver's mount.
    assert.equal(line.sameMount, true);
  });

  test('every file of a sealed layer reads back identical, and its bytes come from the store, not from Session reads', async () => {
    const mnt = mountAt('data');
    const before = await served(metricsUrl);
    for (const [rel, b] of data) assert.deepEqual(shaThrough(path.join(mnt, rel)), { sum: sha(b) }, `${rel} through the mount`);
    const afterReads = await served(metricsUrl);
    const reads = delta(before, afterReads, SESSION_READ);
    const maps = delta(before, afterReads, EXTENT_MAP);
    const total = [...data.values()].reduce((n, b) => n + b.length, 0);
    console.log(`${total} bytes in ${data.size} files: ${reads} Session reads, ${maps} ExtentMap calls at the resolver`);
    // Without the view every non-empty file costs at least one Session read (the 5 MiB one several).
    assert.equal(reads, 0, `Session reads served while reading a sealed layer: ${JSON.stringify([...afterReads])}`);
    // Batched: the first map of a directory brings its small files' maps (siblings), so the files at the root below 1 MiB
    // cost no call of their own; big.bin, mid.bin (over 1 MiB) and sub/deeper/nested.bin (another directory) one each at most.
    assert.ok(maps >= 1 && maps <= 3, `ExtentMap calls: ${maps} for ${[...data.values()].filter((b) => b.length > 0).length} non-empty files`);
    assert.ok(!agent.logs.some((l) => typeof l.event === 'string' && l.event.startsWith('store_view.')), 'no refusal, no layer left unmapped');

    // The control: an agent without the view reads the same files with Session reads, counted the same way.
    const plain = await startAgent({ resolver: resolver.address, extra: ['--prefetch-entries', '0', '--deadline-ms', '5000'] });
    const ctlMnt = rig.mountpoint('mnt-data-plain');
    try {
      plain.mount('data', ctlMnt);
      const before2 = await served(metricsUrl);
      for (const [rel, b] of data) assert.deepEqual(shaThrough(path.join(ctlMnt, rel)), { sum: sha(b) }, `${rel} through the plain agent's mount`);
      const after2 = await served(metricsUrl);
      const plainReads = delta(before2, after2, SESSION_READ);
      console.log(`without the view: ${plainReads} Session reads, ${delta(before2, after2, EXTENT_MAP)} ExtentMap calls`);
      assert.ok(plainReads >= [...data.values()].filter((b) => b.length > 0).length, `Session reads without the view: ${plainReads}`);
      assert.equal(delta(before2, after2, EXTENT_MAP), 0, 'an agent without a view asks no map');
    } finally {
      await plain.stop();
    }
  });

  test('a LIVE layer through the same agent is read through the resolver and follows changes', async () => {
    const mnt = mountAt('live');
    const before = await served(metricsUrl);
    for (const [rel, b] of live) assert.deepEqual(shaThrough(path.join(mnt, rel)), { sum: sha(b) }, `${rel} through the mount`);
    const afterReads = await served(metricsUrl);
    const reads = delta(before, afterReads, SESSION_READ);
    console.log(`LIVE layer: ${reads} Session reads, ${delta(before, afterReads, EXTENT_MAP)} ExtentMap calls`);
    assert.ok(reads >= live.size, `the resolver served the LIVE reads (${reads} Session reads)`);
    assert.equal(delta(before, afterReads, EXTENT_MAP), 0, 'a LIVE layer is never mapped');

    // A changed file is seen as it is now (within the LIVE freshness budget), never as a stale map would give it.
    const changed = randomBytes(310_000);
    fs.writeFileSync(path.join(store, 'layers/live/changing.bin'), changed);
    await waitFor('the LIVE change through the mount', () => shaThrough(path.join(mnt, 'changing.bin')).sum === sha(changed), 15_000);
    assert.ok(!agent.logs.some((l) => l.event === 'store_view.refused'), 'nothing was refused');
  });

  test('a directory that is not the resolver\'s store stops the agent at start', () => {
    assert.ok(fs.existsSync(path.join(store, MARKER)), 'the store has its marker');
    // An empty directory: no marker.
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty);
    const a = agentStartFails(resolver.address, empty, work, 'empty');
    assert.equal(a.timedOut, false, 'it stopped by itself');
    assert.equal(a.status, 1, a.output);
    assert.match(a.output, /^strata agent: --store-view \S+ is not the image store the resolver serves: \.strata\/store-id cannot be opened/m);

    // A copy of the store: the same id, in a file with another inode.
    const copy = path.join(work, 'copy');
    const cp = spawnSync('cp', ['-a', store, copy], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(cp.status, 0, cp.stderr);
    assert.equal(fs.readFileSync(path.join(copy, MARKER), 'utf8'), fs.readFileSync(path.join(store, MARKER), 'utf8'));
    const b = agentStartFails(resolver.address, copy, work, 'copy');
    assert.equal(b.timedOut, false, 'it stopped by itself');
    assert.equal(b.status, 1, b.output);
    assert.match(b.output, /^strata agent: --store-view \S+ holds a copy of the store the resolver serves, not the store itself \(\.strata\/store-id is inode \d+ here, \d+ there\)/m);

    // Another store's id.
    const other = path.join(work, 'other');
    fs.mkdirSync(path.join(other, '.strata'), { recursive: true });
    fs.writeFileSync(path.join(other, MARKER), 'not-this-store\n');
    const c = agentStartFails(resolver.address, other, work, 'other');
    assert.equal(c.timedOut, false, 'it stopped by itself');
    assert.equal(c.status, 1, c.output);
    assert.match(c.output, /^strata agent: --store-view \S+ is not the image store the resolver serves: its id is "not-this-store", the resolver's \S+/m);

    // The running agent and its view are untouched.
    assert.equal(agent.child.exitCode, null, 'the first agent still runs');
  });
});
