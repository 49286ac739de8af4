import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { canMountFuse, forceUnmount, startAgent, startResolver, strata, waitFor, type AgentProcess, type ResolverProcess } from '@strata/harness';

/**
 * The agent's table of paths stays bounded however many distinct files are
 * looked up: what the kernel forgot and the native cache evicted is
 * forgotten too, and looked up again correctly afterwards.
 */

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';
const DIRS = 20;
const FILES = 1000;
const BOUND = 2000;

/** Every path below `dirs` of the mount with its size, as find prints them (from another process). */
function walk(mnt: string, dirs: number[]): string {
  const r = spawnSync('sh', ['-c', `cd '${mnt}' && find ${dirs.map((d) => `d${d}`).join(' ')} -printf '%p %s\\n'`], { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('forgetting what the kernel forgot', { skip }, () => {
  let work: string;
  let resolver: ResolverProcess;
  let agent: AgentProcess;
  let mnt: string;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-forget-'));
    const layer = path.join(work, 'store/layers/many');
    for (let d = 0; d < DIRS; d++) {
      fs.mkdirSync(path.join(layer, `d${d}`), { recursive: true });
      for (let f = 0; f < FILES; f++) fs.writeFileSync(path.join(layer, `d${d}`, `f${f}`), 'x'.repeat((d * FILES + f) % 97));
    }
    resolver = await startResolver({ store: path.join(work, 'store') });
    agent = await startAgent({ resolver: resolver.address, extra: ['--prefetch-entries', '0', '--attr-entries', String(BOUND)] });
    const r = strata(['layer', 'create', '--source', 'dir:layers/many', '--name', 'many'], { STRATA_RESOLVER: resolver.address });
    assert.equal(r.status, 0, r.stderr);
    mnt = path.join(work, 'mnt');
    fs.mkdirSync(mnt);
    agent.mount('many', mnt);
  });

  after(async () => {
    await agent?.stop();
    await resolver?.stop();
    if (mnt) forceUnmount(mnt);
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('20,000 distinct files looked up with a bound of 2,000: the forgotten half is let go and reads back the same', async () => {
    const firstHalf = Array.from({ length: DIRS / 2 }, (_, i) => i);
    const secondHalf = firstHalf.map((i) => i + DIRS / 2);
    const before = walk(mnt, firstHalf);
    assert.equal(before.trim().split('\n').length, (DIRS / 2) * (FILES + 1));
    // The kernel lets go of its dentries and inodes (FORGET): only the native cache's bound keeps anything.
    fs.writeFileSync('/proc/sys/vm/drop_caches', '2');
    walk(mnt, secondHalf);
    const swept = await waitFor('a sweep that forgot the first half', () =>
      agent.logs.find((l) => l.event === 'agent.nodes.swept' && typeof l.forgotten === 'number' && l.forgotten >= ((DIRS / 2) * FILES) / 2),
    );
    console.log(`swept: forgot ${String(swept.forgotten)}, kept ${String(swept.kept)} in ${String(swept.ms)} ms`);
    // Forgotten paths are looked up again, with new inos, and answer as before.
    assert.equal(walk(mnt, firstHalf), before);
    const sizes = spawnSync('sh', ['-c', `stat -c '%n %s' '${mnt}/d3/f7' '${mnt}/d15/f999'`], { encoding: 'utf8' });
    assert.equal(sizes.stdout, `${mnt}/d3/f7 ${(3 * FILES + 7) % 97}\n${mnt}/d15/f999 ${(15 * FILES + 999) % 97}\n`);
  });
});
