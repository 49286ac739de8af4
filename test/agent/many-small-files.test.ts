import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canMountFuse, waitFor, type AgentProcess, type ResolverProcess } from '@strata/harness';
import { startStoreAndAgents, type StoreAndAgents } from './store-and-agents';

/**
 * A cold read of many small files back to back, as `find | xargs cat`
 * does, through one mount with the data cache on: every file comes back
 * right the first time (no READ waits for the agent's request deadline),
 * every one of them ends up kept whole on disk, and a second pass is then
 * served without any resolver.
 */

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';
const DIRS = 12;
const PER_DIR = 25;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * `sha256sum` of every file under `root` in one child process (file → sum),
 * bounded. Not spawnSync: this process must go on reading the agent's log
 * pipe meanwhile (an agent at debug level logs a line per file cached, and
 * a full pipe would stall its serving thread, a fault of the test).
 */
async function sumsThrough(root: string): Promise<{ sums: Map<string, string>; err: string }> {
  const r = await new Promise<{ stdout: string; stderr: string; status: string }>((resolve) =>
    execFile('sh', ['-c', 'cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum', 'sh', root], { encoding: 'utf8', timeout: 120_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) =>
      resolve({ stdout, stderr, status: err ? String(err.code ?? err.signal) : '0' }),
    ),
  );
  const sums = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}\.\/(.+)$/.exec(line);
    if (m) sums.set(m[2], m[1]);
  }
  return { sums, err: `${r.status} ${r.stderr.slice(0, 500)}` };
}

describe('many small files read cold through one mount', { skip }, () => {
  let rig: StoreAndAgents;
  let resolver: ResolverProcess;
  let agent: AgentProcess;
  let mnt: string;
  const want = new Map<string, string>();

  before(async () => {
    const files: [string, Buffer][] = [];
    for (let d = 0; d < DIRS; d++) {
      for (let f = 0; f < PER_DIR; f++) {
        // Sizes from empty to a few pages, a page boundary among them.
        const b = randomBytes(f === 0 ? 0 : f === 1 ? 4096 : Math.floor(Math.random() * 20_000) + 1);
        const name = `d${d}/f${f}.dat`;
        files.push([name, b]);
        want.set(name, sha(b));
      }
    }
    rig = await startStoreAndAgents({ prefix: 'small-files', layers: { small: files } });
    resolver = rig.resolver;
    agent = await rig.startAgent({ extra: ['--data-cache-dir', path.join(rig.work, 'cache')] });
    rig.createLayers(['--source', 'dir:layers/small', '--name', 'small']);
    mnt = rig.mountpoint('mnt');
    agent.mount('small', mnt);
  });

  after(() => rig?.close());

  test('every file reads back right on the first pass, none answered by the request deadline', async () => {
    const { sums, err } = await sumsThrough(mnt);
    assert.equal(sums.size, want.size, err);
    assert.deepEqual(sums, want);
    const failed = agent.logs.filter((l) => l.event === 'agent.fuse.handler_error' || l.level === 'error');
    assert.deepEqual(failed, []);
  });

  test('every file read is then kept on disk, and a second pass needs no resolver', async () => {
    const nonEmpty = [...want.keys()].filter((k) => !k.endsWith('/f0.dat')).length;
    // One debug line per file cached (the harness runs agents at debug level).
    const cached = (): number => new Set(agent.logs.filter((l) => l.event === 'agent.data_cache.filled').map((l) => l.path)).size;
    await waitFor(`${nonEmpty} files in the data cache`, () => (cached() >= nonEmpty ? true : undefined), 60_000).catch(() => {
      assert.fail(`${cached()} of ${nonEmpty} files in the data cache after 60 s`);
    });
    const statfs = (): Promise<string> =>
      new Promise((resolve) => execFile('stat', ['-f', '-c', '%b %s %l', mnt], { timeout: 30_000 }, (e, out, err) => resolve(e ? `failed: ${err}` : out.trim())));
    const before = await statfs();
    await resolver.stop();
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
    // A sealed mount's statfs is known: find's fts asks it, and it must not wait for (or fail at) a resolver deadline.
    assert.equal(await statfs(), before);
    const { sums, err } = await sumsThrough(mnt);
    assert.deepEqual(sums, want, err);
  });
});
