import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { canMountFuse, waitFor, type AgentProcess } from '@strata/harness';
import { startStoreAndAgents, type StoreAndAgents } from './store-and-agents';

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
  let rig: StoreAndAgents;
  let agent: AgentProcess;
  let mnt: string;

  before(async () => {
    const files: [string, string][] = [];
    for (let d = 0; d < DIRS; d++) for (let f = 0; f < FILES; f++) files.push([`d${d}/f${f}`, 'x'.repeat((d * FILES + f) % 97)]);
    rig = await startStoreAndAgents({ prefix: 'forget', layers: { many: files } });
    agent = await rig.startAgent({ extra: ['--prefetch-entries', '0', '--attr-entries', String(BOUND)] });
    rig.createLayers(['--source', 'dir:layers/many', '--name', 'many']);
    mnt = rig.mountpoint('mnt');
    agent.mount('many', mnt);
  });

  after(() => rig?.close());

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
