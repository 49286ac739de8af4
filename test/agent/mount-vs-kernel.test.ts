import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { canMountFuse, canMountOverlay, forceUnmount, HAVE_REDIS, mountOverlay, startAgent, startRedis, startResolver, type AgentProcess, type RedisProcess, type ResolverProcess } from '@strata/harness';
import { PROBES, mainStack, ODD_NAMES } from '../support/main-fixture';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { ALL_FIELDS, compareTrees, readKernelTree } from '../support/tree-snapshot';
import { isUtf8 } from '../support/fuse-view';

const skip = canMountOverlay() && canMountFuse() ? false : 'needs root, overlayfs and /dev/fuse';

/** The one symlink of the fixture whose target is not UTF-8. */
const ODD_LINK = '/links/odd';

function errnoAt(p: string): string {
  try {
    fs.lstatSync(p);
    return 'ok';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'unknown';
  }
}

function code(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'unknown';
  }
}

function mountOptions(target: string): string[] {
  const r = spawnSync('findmnt', ['-n', '-o', 'OPTIONS', '--mountpoint', target], { encoding: 'utf8' });
  return r.stdout.trim().split(',');
}

for (const cache of ['in-process', 'redis'] as const) {
  describe(`a strata mount against the kernel's overlayfs (${cache} cache)`, { skip: skip || (cache === 'redis' && !HAVE_REDIS ? 'needs redis-server' : false) }, () => {
    let fx: StoreFixture;
    let redis: RedisProcess | undefined;
    let resolver: ResolverProcess;
    let agent: AgentProcess;
    let work: string;
    let kernel: string;
    let strataMnt: string;
    let unmountKernel: (() => Promise<void>) | undefined;

    before(async () => {
      fx = await makeStore(mainStack(), 'trusted');
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-e2e-'));
      fs.chmodSync(work, 0o755); // other users must reach the mounts
      kernel = path.join(work, 'kernel');
      strataMnt = path.join(work, 'strata');
      fs.mkdirSync(strataMnt);
      const layersDir = path.join(fx.store, 'layers');
      unmountKernel = await mountOverlay(layersDir, fx.rootsTopFirst.map((r) => path.relative(layersDir, r)), kernel);
      if (cache === 'redis') redis = await startRedis();
      resolver = await startResolver({ store: fx.store, redis: redis?.url });
      agent = await startAgent({ resolver: resolver.address });
      agent.mount(fx.layers[fx.layers.length - 1].name, strataMnt);
    });

    after(async () => {
      const code = await agent?.stop();
      forceUnmount(strataMnt);
      await resolver?.stop();
      await redis?.stop();
      await unmountKernel?.();
      fs.rmSync(work, { recursive: true, force: true });
      fx?.cleanup();
      assert.equal(code, 0, 'agent exits 0 on SIGTERM');
      assert.ok(!mountOptions(strataMnt).includes('ro'), 'the agent unmounted at SIGTERM');
    });

    test('every path as bytes: names, modes, owners, sizes, blocks, nlink, rdev, mtime in ns, st_ino in full, xattrs, link targets, contents', () => {
      const expected = readKernelTree(kernel, true);
      const actual = readKernelTree(strataMnt, true);
      assert.ok([...expected.values()].some((e) => e.mtimeNs % 1_000_000n !== 0n), 'the fixture has times finer than a millisecond');
      assert.ok(expected.size > 40, `kernel tree has ${expected.size} entries`);
      assert.deepEqual(compareTrees(expected, actual, ALL_FIELDS), []);
      // The same again, now from the agent's and the kernel's caches.
      assert.deepEqual(compareTrees(expected, readKernelTree(strataMnt, true), ALL_FIELDS), []);
    });

    test('lookups fail with the kernel errno; absolute symlinks resolve the same way through both', () => {
      for (const probe of [...PROBES, '/links/abs', '/links/dir/ssh_config', '/links/dangling']) {
        assert.equal(errnoAt(path.join(strataMnt, probe)), errnoAt(path.join(kernel, probe)), probe);
      }
    });

    test('names and link targets that are not UTF-8 are listed, opened and read back byte for byte', () => {
      const names = fs.readdirSync(path.join(strataMnt, 'names'), { encoding: 'buffer' });
      const want = fs.readdirSync(path.join(kernel, 'names'), { encoding: 'buffer' });
      assert.deepEqual(names.map((n) => n.toString('hex')).sort(), want.map((n) => n.toString('hex')).sort());
      assert.ok(ODD_NAMES.some((n) => !isUtf8(n)), 'the fixture has a non-UTF-8 name');
      for (const n of names) {
        const at = (root: string): Buffer => Buffer.concat([Buffer.from(`${root}/names/`), n]);
        assert.deepEqual(fs.readFileSync(at(strataMnt)), fs.readFileSync(at(kernel)), n.toString('hex'));
      }
      assert.deepEqual(fs.readlinkSync(path.join(strataMnt, ODD_LINK), { encoding: 'buffer' }), fs.readlinkSync(path.join(kernel, ODD_LINK), { encoding: 'buffer' }));
    });

    test('every write is EROFS; the mount is ro with exec, suid and dev as the layer allows', () => {
      const m = (p: string): string => path.join(strataMnt, p);
      assert.equal(code(() => fs.writeFileSync(m('new-file'), 'x')), 'EROFS');
      assert.equal(code(() => fs.openSync(m('etc/passwd'), 'r+')), 'EROFS');
      assert.equal(code(() => fs.truncateSync(m('etc/passwd'))), 'EROFS');
      assert.equal(code(() => fs.mkdirSync(m('d'))), 'EROFS');
      assert.equal(code(() => fs.unlinkSync(m('etc/passwd'))), 'EROFS');
      assert.equal(code(() => fs.renameSync(m('etc/passwd'), m('etc/p2'))), 'EROFS');
      assert.equal(code(() => fs.chmodSync(m('etc/passwd'), 0o600)), 'EROFS');
      assert.equal(code(() => fs.utimesSync(m('etc/passwd'), 1, 1)), 'EROFS');
      assert.equal(code(() => fs.symlinkSync('x', m('l'))), 'EROFS');
      assert.equal(spawnSync('setfattr', ['-n', 'user.x', '-v', '1', m('etc/passwd')], { encoding: 'utf8' }).stderr.includes('Read-only file system'), true);
      const opts = mountOptions(strataMnt);
      for (const o of ['ro', 'default_permissions', 'allow_other']) assert.ok(opts.includes(o), `${o} in ${opts.join(',')}`);
      for (const o of ['noexec', 'nosuid', 'nodev']) assert.ok(!opts.includes(o), `${o} not in ${opts.join(',')}`);
    });

    test('the kernel enforces permissions for other users (default_permissions, allow_other)', () => {
      const asNobody = (...args: string[]) => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...args], { encoding: 'utf8' });
      assert.equal(asNobody('cat', path.join(strataMnt, 'etc/passwd')).status, 0, 'other users can read the mount');
      const denied = asNobody('cat', path.join(strataMnt, 'etc/shadow'));
      assert.notEqual(denied.status, 0);
      assert.match(denied.stderr, /Permission denied/);
      assert.match(asNobody('cat', path.join(kernel, 'etc/shadow')).stderr, /Permission denied/);
    });

    test('NO_EXEC, NO_SUID and NO_DEV become noexec, nosuid, nodev', async () => {
      const client = new StrataClient({ resolver: resolver.address });
      const locked = await client.createLayer({
        source: `dir:${path.relative(fx.store, fx.rootsTopFirst[0])}`,
        base: { id: fx.layers[fx.layers.length - 2].layerId },
        name: `locked-${cache}`,
        mountOptions: ['no-exec', 'no-suid', 'no-dev'],
      });
      client.close();
      const target = path.join(work, 'locked');
      fs.mkdirSync(target);
      try {
        agent.mount(String(locked.layerId), target);
        const opts = mountOptions(target);
        for (const o of ['ro', 'noexec', 'nosuid', 'nodev']) assert.ok(opts.includes(o), `${o} in ${opts.join(',')}`);
        assert.equal(spawnSync(path.join(target, 'opt/app/bin/run2')).error?.message.includes('EACCES'), true, 'exec refused on noexec');
        assert.notEqual(spawnSync(path.join(strataMnt, 'opt/app/bin/run2')).error?.message.includes('EACCES'), true, 'exec allowed on the plain mount');
        assert.equal(fs.readFileSync(path.join(target, 'opt/app/bin/run3'), 'utf8'), fs.readFileSync(path.join(strataMnt, 'opt/app/bin/run3'), 'utf8'));
      } finally {
        agent.umount(target);
      }
      assert.ok(!mountOptions(target).includes('ro'));
    });

    test('statfs answers for the mount', () => {
      const s = fs.statfsSync(strataMnt);
      assert.equal(s.type, 0x65735546, 'FUSE_SUPER_MAGIC');
      assert.ok(s.blocks > 0 && s.bsize > 0);
    });
  });
}
