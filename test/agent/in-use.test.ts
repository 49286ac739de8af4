import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { canMountFuse, waitFor, type AgentProcess } from '@strata/harness';
import { startStoreAndAgents, type CliResult, type StoreAndAgents } from './store-and-agents';

/**
 * Layers that mounts use are not deleted or changed under them: the
 * resolvers know from the agents' reports which layers every mount's chain
 * holds, refuse the change with one line that says where, and a forced
 * change withdraws the mounts (the agent unmounts them at its next check)
 * instead of leaving them half old and half new.
 */

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';

describe('layers in use by mounts', { skip }, () => {
  let rig: StoreAndAgents;
  let agent: AgentProcess;
  const mounts: string[] = [];

  function cli(args: string[]): CliResult {
    return rig.cli(args, { STRATA_AGENT_SOCKET: agent.socket });
  }

  function mountpoint(name: string): string {
    const m = rig.mountpoint(name);
    mounts.push(m);
    return m;
  }

  before(async () => {
    rig = await startStoreAndAgents({ prefix: 'in-use', layers: { base: [['etc/hostname', 'base\n']], fix: [['etc/motd', 'fixed\n']] } });
    agent = await rig.startAgent({ extra: ['--prefetch-entries', '0'] });
    for (const args of [
      ['--source', 'dir:layers/base', '--name', 'base'],
      ['--source', 'dir:layers/fix', '--type', 'overlay', '--base', 'base', '--name', 'top'],
      ['--source', 'dir:layers/fix', '--type', 'overlay', '--base', 'base', '--name', 'spare'],
    ]) {
      const r = cli(['layer', 'create', ...args]);
      assert.equal(r.status, 0, r.stderr);
    }
  });

  after(() => rig?.close());

  test('deleting or changing a mounted layer, or one below it, is refused with where it is mounted; a rename is not', () => {
    const mnt = mountpoint('top');
    agent.mount('top', mnt);
    const del = cli(['layer', 'delete', 'top']);
    assert.notEqual(del.status, 0);
    assert.match(del.stderr, new RegExp(`in use by 1 mount: ${os.hostname()}:${mnt}.*--force`));
    assert.equal(del.stderr.trim().split('\n').length, 1, del.stderr);
    const below = cli(['layer', 'update', 'base', '--path', '/etc']);
    assert.notEqual(below.status, 0);
    assert.match(below.stderr, /builds on it/);
    // Nothing of the tree changes with a name, nor with values the layer already has.
    assert.equal(cli(['layer', 'update', 'top', '--name', 'top-renamed']).status, 0);
    assert.equal(cli(['layer', 'update', 'top-renamed', '--source', 'dir:layers/fix']).status, 0);
    // A layer no mount uses is free.
    assert.equal(cli(['layer', 'delete', 'spare']).status, 0);
    assert.equal(fs.readFileSync(path.join(mnt, 'etc/motd'), 'utf8'), 'fixed\n', 'the mount still serves');
  });

  test('a forced change withdraws the mounts that use the layer; after an unmount the layer is free', async () => {
    const mnt = mounts[0];
    const forced = cli(['layer', 'update', 'top-renamed', '--option', 'no-exec', '--force']);
    assert.equal(forced.status, 0, forced.stderr);
    await waitFor('the mount to be withdrawn', () => (agent.logs.some((l) => l.event === 'agent.mount_withdrawn' && l.mountpoint === mnt) ? true : undefined), 15_000);
    // Until the detach reaches this path, a listing may still meet the aborted connection (ECONNABORTED): keep looking, bounded.
    await waitFor(
      'the mountpoint to be a plain directory again',
      () => {
        try {
          return fs.readdirSync(mnt).length === 0 ? true : undefined;
        } catch {
          return undefined;
        }
      },
      5000,
    );
    const listed = JSON.parse(cli(['mounts', '--json']).stdout) as { mounts: { mountpoint: string }[] };
    assert.ok(!listed.mounts.some((m) => m.mountpoint === mnt));

    // Mounted again, then unmounted: the report follows and the layer can go without force.
    agent.mount('top-renamed', mnt);
    assert.notEqual(cli(['layer', 'delete', 'top-renamed']).status, 0);
    agent.umount(mnt);
    const del = cli(['layer', 'delete', 'top-renamed']);
    assert.equal(del.status, 0, del.stderr);
  });

  test('a forced delete withdraws the mount too', async () => {
    assert.equal(cli(['layer', 'create', '--source', 'dir:layers/fix', '--type', 'overlay', '--base', 'base', '--name', 'doomed']).status, 0);
    const mnt = mountpoint('doomed');
    agent.mount('doomed', mnt);
    const del = cli(['layer', 'delete', 'doomed', '--force']);
    assert.equal(del.status, 0, del.stderr);
    await waitFor('the mount to be withdrawn', () => (agent.logs.some((l) => l.event === 'agent.mount_withdrawn' && l.mountpoint === mnt) ? true : undefined), 15_000);
    assert.match(String(agent.logs.find((l) => l.event === 'agent.mount_withdrawn' && l.mountpoint === mnt)?.reason), /deleted by force/);
  });
});
