import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { LIVE_FRESHNESS } from '@strata/layers';
import { REPO, canMountFuse, forceUnmount, processAlive, startAgent, startResolver, waitFor } from '@strata/harness';
import { makeStore } from '../support/store-fixture';
import { POLL_MS, visibleWithin } from '../support/visibility';
import { within } from '../support/bounded';

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';

/**
 * What the measurement itself adds to the time a change takes to show: the
 * clock starts after the writes (which only shortens it), then up to one
 * polling interval passes before a look sees the change, and a look is three
 * reads through the mount (a FUSE round trip each, a few ms; allow tens on a
 * busy 2-core machine).
 */
const MEASUREMENT_SLACK_MS = POLL_MS + 90;

describe('LIVE layers through a mount', { skip }, () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test('changes in a LIVE layer show through the same mount within the one-second LIVE budget', async () => {
    const fx = await makeStore([{ entries: [{ type: 'file', path: '/etc/base', content: 'base\n' }] }, { entries: [{ type: 'file', path: '/etc/snap', content: 'snap\n' }] }]);
    cleanups.push(() => fx.cleanup());
    const liveDir = path.join(fx.store, 'live');
    fs.mkdirSync(path.join(liveDir, 'run'), { recursive: true });
    fs.writeFileSync(path.join(liveDir, 'run/status'), 'v1\n');
    const resolver = await startResolver({ store: fx.store });
    cleanups.push(() => resolver.stop());
    const client = new StrataClient({ resolver: resolver.address });
    await client.createLayer({ source: 'dir:live', base: { name: 'l1' }, layerType: 'overlay', name: 'running-vm', mountOptions: ['live'] });
    client.close();
    const agent = await startAgent({ resolver: resolver.address });
    cleanups.push(() => agent.stop());
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-live-'));
    cleanups.push(() => fs.rmSync(mnt, { recursive: true, force: true }));
    cleanups.push(() => forceUnmount(mnt));
    const info = agent.mount('running-vm', mnt);
    assert.equal(info.live, true);
    assert.equal(fs.readFileSync(path.join(mnt, 'run/status'), 'utf8'), 'v1\n');
    assert.deepEqual(fs.readdirSync(path.join(mnt, 'etc')), ['base', 'snap']);

    fs.writeFileSync(path.join(liveDir, 'run/status'), 'version two, longer\n');
    fs.writeFileSync(path.join(liveDir, 'run/new'), 'appeared\n');
    fs.mkdirSync(path.join(liveDir, 'etc'));
    fs.writeFileSync(path.join(liveDir, 'etc/base'), 'overridden\n');
    const seen = await visibleWithin(
      {
        'the changed file': () => fs.readFileSync(path.join(mnt, 'run/status'), 'utf8') === 'version two, longer\n',
        'the new file in its listing': () => fs.readdirSync(path.join(mnt, 'run')).includes('new'),
        'the lower file overridden': () => fs.readFileSync(path.join(mnt, 'etc/base'), 'utf8') === 'overridden\n',
      },
      10_000,
    );
    for (const [what, ms] of Object.entries(seen)) {
      assert.ok(ms <= LIVE_FRESHNESS.budgetMs + MEASUREMENT_SLACK_MS, `${what} showed after ${ms} ms (budget ${LIVE_FRESHNESS.budgetMs} ms)`);
    }
  });
});

describe('npm start (the demo)', { skip }, () => {
  test('builds the demo VM disk, mounts its snapshot with the fix under ./mnt, and unmounts on Ctrl-C', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-demo-'));
    const mnt = path.join(cwd, 'mnt');
    const demo = spawn(process.execPath, [path.join(REPO, 'libs/demo-store/dist/main.js')], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    demo.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    demo.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exit = new Promise<number | null>((resolve) => demo.on('exit', (code) => resolve(code)));
    try {
      await waitFor('the demo to say it is ready', () => (out.includes('Ctrl-C unmounts') ? true : err ? Promise.reject(new Error(err)) : undefined), 60_000);
      assert.match(out, /mounted demo-fixed \(layer \d+: demo-base <- demo-snap1 <- demo-fixed\) on mnt/);
      assert.match(out, /demo-snap1: qcow2:vm\/snapshot-1\.qcow2#2/);
      assert.match(out, /strata diff demo-base demo-snap1/);
      // Written by the VM into its disk before the snapshot.
      assert.equal(fs.readFileSync(path.join(mnt, 'etc/motd'), 'utf8'), 'hello from the running VM\n');
      assert.equal(fs.readFileSync(path.join(mnt, 'etc/hostname'), 'utf8'), 'demo-vm-snapshot-1\n');
      // From the base image through the qcow2 backing file.
      assert.equal(fs.readFileSync(path.join(mnt, 'etc/os-release'), 'utf8'), 'NAME="strata demo"\nVERSION_ID="1"\n');
      // The dir: overlay's fix and whiteout over the image.
      assert.equal(fs.readFileSync(path.join(mnt, 'etc/ssh/sshd_config'), 'utf8'), 'PermitRootLogin no\nPasswordAuthentication no\n');
      assert.deepEqual(fs.readdirSync(path.join(mnt, 'opt/legacy')), ['a.conf']);
      assert.deepEqual(fs.readdirSync(path.join(mnt, 'var/log')), []);
      assert.throws(() => fs.writeFileSync(path.join(mnt, 'x'), ''), /EROFS/);
      demo.kill('SIGINT');
      assert.equal(await within('the demo to exit on SIGINT', exit, 60_000, () => err), 0, err);
      assert.match(out, /SIGINT: unmounting/);
      assert.deepEqual(fs.readdirSync(mnt), [], 'unmounted');
      assert.ok(fs.existsSync(path.join(cwd, '.demo/agent.log')));
    } finally {
      if (demo.exitCode === null) demo.kill('SIGKILL');
      forceUnmount(mnt);
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  test('Ctrl-C on `npm start | tee log` (the terminal signals the whole group, tee dies first) leaves no process and no mount behind', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-demo-tee-'));
    const mnt = path.join(cwd, 'mnt');
    const log = path.join(cwd, 'out.log');
    // A shell pipeline in its own process group, as a terminal's foreground job.
    const job = spawn('sh', ['-c', `"${process.execPath}" "${path.join(REPO, 'libs/demo-store/dist/main.js')}" | tee "${log}"`], { cwd, stdio: 'ignore', detached: true });
    const exit = new Promise<void>((resolve) => job.on('exit', () => resolve()));
    const pidsOf = (file: string): number[] => {
      try {
        return [...new Set(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { pid?: number }).pid ?? 0))].filter((p) => p > 0);
      } catch {
        return [];
      }
    };
    try {
      await waitFor('the demo to be ready', () => (fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('Ctrl-C unmounts') ? true : undefined), 60_000);
      const services = [...pidsOf(path.join(cwd, '.demo/resolver.log')), ...pidsOf(path.join(cwd, '.demo/agent.log'))];
      assert.equal(services.length, 2, 'a resolver and an agent');
      process.kill(-job.pid!, 'SIGINT');
      await within('the pipeline to exit on SIGINT', exit, 60_000);
      await waitFor('the resolver and the agent to be gone', () => (services.every((p) => !processAlive(p)) ? true : undefined), 20_000);
      await waitFor('the mount to be gone', () => (fs.readdirSync(mnt).length === 0 ? true : undefined), 10_000);
    } finally {
      try {
        process.kill(-job.pid!, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
      forceUnmount(mnt);
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});
