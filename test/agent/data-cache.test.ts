import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canMountFuse, waitFor, type AgentProcess, type ResolverProcess } from '@strata/harness';
import { startStoreAndAgents, type StoreAndAgents } from './store-and-agents';

/**
 * Sealed files read through a mount are kept whole on disk by the agent and
 * handed to the kernel (FUSE passthrough here), so they stay readable, at
 * kernel speed, without the resolvers; the cache holds at most its size.
 */

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';
const MiB = 1024 * 1024;
const FILES = ['a', 'b', 'c', 'd', 'e', 'f'];
const FILE_BYTES = 6 * MiB + 4321;
const CACHE_MB = 32;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** sha256 of a file as another process reads it (the test process must not read the mount it does not serve... nor block on it). */
function shaThrough(file: string): { sum?: string; err?: string } {
  const r = spawnSync('sh', ['-c', `sha256sum < '${file}'`], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? { sum: r.stdout.split(' ')[0] } : { err: r.stderr.trim() };
}

/** Random 4 KiB reads in a child; prints "ok" when every block has the sha256 given for its offset. */
function randomReads(file: string, blocks: Map<number, string>): string {
  const script = `const fs = require('fs'); const c = require('crypto');
    const fd = fs.openSync(process.argv[1], 'r'); const b = Buffer.alloc(4096);
    for (const [off, want] of JSON.parse(process.argv[2])) { const n = fs.readSync(fd, b, 0, 4096, off);
      if (c.createHash('sha256').update(b.subarray(0, n)).digest('hex') !== want) { console.log('block at ' + off + ' differs'); process.exit(1); } }
    console.log('ok');`;
  const r = spawnSync(process.execPath, ['-e', script, file, JSON.stringify([...blocks])], { encoding: 'utf8', timeout: 30_000 });
  return (r.stdout + r.stderr).trim();
}

function cachedFiles(dir: string): { count: number; bytes: number; sums: Set<string> } {
  const sub = fs.readdirSync(dir).filter((n) => n.startsWith('agent-'));
  let count = 0;
  let bytes = 0;
  const sums = new Set<string>();
  for (const s of sub) {
    // Each file's bytes are <name>.data; their records are in the cache's JOURNAL and INDEX.
    for (const f of fs.readdirSync(path.join(dir, s)).filter((n) => n.endsWith('.data'))) {
      const b = fs.readFileSync(path.join(dir, s, f));
      count++;
      bytes += b.length;
      sums.add(sha(b));
    }
  }
  return { count, bytes, sums };
}

describe('the on-disk data cache', { skip }, () => {
  let rig: StoreAndAgents;
  let work: string;
  let cacheDir: string;
  let resolver: ResolverProcess;
  let agent: AgentProcess;
  let mnt: string;
  const content = new Map<string, Buffer>();

  before(async () => {
    for (const f of FILES) content.set(f, randomBytes(FILE_BYTES));
    rig = await startStoreAndAgents({ prefix: 'data-cache', layers: { data: [...content].map(([f, b]) => [`${f}.bin`, b] as const) } });
    ({ work, resolver } = rig);
    cacheDir = path.join(work, 'cache');
    agent = await rig.startAgent({
      socket: path.join(work, 'agent.sock'),
      extra: ['--prefetch-entries', '0', '--chunk-cache-mb', '1', '--data-cache-mb', String(CACHE_MB), '--data-cache-dir', cacheDir, '--deadline-ms', '1000'],
    });
    rig.createLayers(['--source', 'dir:layers/data', '--name', 'data']);
    mnt = rig.mountpoint('mnt');
    agent.mount('data', mnt);
  });

  after(() => rig?.close());

  test('the mount says how cached data is served', async () => {
    const mounted = await waitFor('agent.mounted', () => agent.logs.find((l) => l.event === 'agent.mounted'));
    assert.ok(mounted.dataServing === 'passthrough' || mounted.dataServing === 'pread', `dataServing ${String(mounted.dataServing)}`);
    console.log(`data served by ${String(mounted.dataServing)}`);
  });

  test('a file read once is kept whole on disk, and the cache stays within its size as more are read', async () => {
    for (const f of FILES) {
      const want = sha(content.get(f)!);
      assert.deepEqual(shaThrough(path.join(mnt, `${f}.bin`)), { sum: want }, `${f}.bin through the mount`);
      await waitFor(`${f}.bin in the data cache`, async () => (cachedFiles(cacheDir).sums.has(want) ? true : undefined));
      const now = cachedFiles(cacheDir);
      assert.ok(now.bytes <= CACHE_MB * MiB, `${now.bytes} bytes cached, at most ${CACHE_MB} MiB`);
    }
    const end = cachedFiles(cacheDir);
    assert.ok(end.count < FILES.length, `older files were evicted (${end.count} of ${FILES.length} kept)`);
  });

  test('cached files are read whole and at random without the resolver; evicted ones are not', async () => {
    const last = FILES[FILES.length - 1];
    const first = FILES[0];
    assert.ok(!cachedFiles(cacheDir).sums.has(sha(content.get(first)!)), `${first}.bin was evicted`);
    await resolver.stop();
    // The kernel's page cache would answer by itself: only the agent's disk cache may serve now.
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
    assert.deepEqual(shaThrough(path.join(mnt, `${last}.bin`)), { sum: sha(content.get(last)!) });
    const blocks = new Map<number, string>();
    const data = content.get(last)!;
    for (let i = 0; i < 200; i++) {
      const off = Math.floor(Math.random() * Math.floor(data.length / 4096)) * 4096;
      blocks.set(off, sha(data.subarray(off, off + 4096)));
    }
    assert.equal(randomReads(path.join(mnt, `${last}.bin`), blocks), 'ok');
    const gone = shaThrough(path.join(mnt, `${first}.bin`));
    assert.equal(gone.sum, undefined, 'an evicted file needs a resolver');
    assert.match(gone.err ?? '', /Input\/output error/);
  });

  test("the cache outlives its agent: the next agent on the socket serves what it holds without the resolver", async () => {
    await agent.stop();
    const stopped = await waitFor('agent.stopped', () => agent.logs.find((l) => l.event === 'agent.stopped'));
    const stats = stopped?.dataCache as { fills?: number; evictions?: number } | undefined;
    assert.ok((stats?.fills ?? 0) >= FILES.length && (stats?.evictions ?? 0) > 0, JSON.stringify(stats));
    const kept = cachedFiles(cacheDir).sums;
    const held = FILES.filter((f) => kept.has(sha(content.get(f)!)));
    assert.ok(held.length > 0, 'files are still on disk after the agent stopped');

    // The resolver (stopped above) is back for the mount: what the cache holds must not be fetched from it.
    resolver = await rig.restartResolver();
    agent = await rig.startAgent({
      socket: agent.socket,
      extra: ['--prefetch-entries', '0', '--chunk-cache-mb', '1', '--data-cache-mb', String(CACHE_MB), '--data-cache-dir', cacheDir, '--deadline-ms', '1000'],
    });
    // What `strata mount` made is mounted again by the next agent on the socket (its desired state).
    await waitFor('the mount restored', () => agent.logs.find((l) => l.event === 'agent.mount_restored'));
    for (const f of held) assert.equal(shaThrough(path.join(mnt, `${f}.bin`)).sum, sha(content.get(f)!), `${f}.bin`);
    await agent.stop();
    const second = await waitFor('agent.stopped', () => agent.logs.find((l) => l.event === 'agent.stopped'));
    const reused = (second?.dataCache as { reused?: number } | undefined)?.reused ?? 0;
    assert.equal(reused, held.length, JSON.stringify(second?.dataCache));
    assert.equal(second?.chunkMisses, 0, 'nothing was fetched from the resolver');
  });
});
