import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { REPO, canMountFuse, forceUnmount, waitFor } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { DEPLOY, INSTALL_SH, UNITS, configValue, execStart, readConfig, readUnit, words } from './deploy-files';

/**
 * deploy/install.sh run for real, into temporary prefixes, and the services
 * it installs run the way the units run them: as the units' users, with
 * exactly the units' capability sets (setpriv sets what systemd would).
 */

const NOBODY = 65534;
/** Capability numbers of linux/capability.h that the units name. */
const CAP_BITS: Record<string, number> = { CAP_DAC_READ_SEARCH: 2, CAP_SYS_ADMIN: 21 };
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function install(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('bash', [INSTALL_SH, ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: '/', env: { PATH, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every symbolic link under `dir` and where it leads. */
function linksUnder(dir: string): { link: string; target: string }[] {
  const out: { link: string; target: string }[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isSymbolicLink()) out.push({ link: p, target: path.resolve(dir, fs.readlinkSync(p)) });
    else if (e.isDirectory()) out.push(...linksUnder(p));
  }
  return out;
}

let work: string;
let prefix: string;
let strataBin: string;

before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-install-'));
  // Services run below as user nobody: the installed tree must be readable.
  fs.chmodSync(work, 0o755);
  prefix = path.join(work, 'opt/strata');
  const r = install(['--prefix', prefix, '--no-systemd']);
  assert.equal(r.status, 0, r.out);
  strataBin = path.join(prefix, 'bin/strata');
});

after(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('deploy/install.sh', () => {
  test('--no-systemd puts the tree and the wrapper at the prefix, and nothing anywhere else', () => {
    assert.deepEqual(fs.readdirSync(work), ['opt']);
    assert.deepEqual(fs.readdirSync(prefix).sort(), ['bin', 'lib']);
    assert.deepEqual(fs.readdirSync(path.join(prefix, 'bin')), ['strata']);
    assert.ok(fs.statSync(strataBin).mode & 0o111, 'the wrapper is executable');
    for (const f of ['services/resolver/dist/main.js', 'services/agent/dist/main.js', 'libs/cli/dist/main.js', 'bin/strata', 'proto/strata/v1/layer.proto']) {
      assert.ok(fs.existsSync(path.join(prefix, 'lib', f)), f);
    }
    const tests = spawnSync('find', [path.join(prefix, 'lib/libs'), path.join(prefix, 'lib/services'), '-name', '*.test.js'], { encoding: 'utf8' }).stdout;
    assert.equal(tests, '', 'no unit tests are installed');
    // Installed workspace packages bring their native addons along.
    for (const top of ['libs', 'services']) {
      for (const pkg of fs.readdirSync(path.join(prefix, 'lib', top))) {
        const release = path.join(REPO, top, pkg, 'build/Release');
        if (!fs.existsSync(release)) continue;
        for (const addon of fs.readdirSync(release).filter((f) => f.endsWith('.node'))) {
          assert.ok(fs.existsSync(path.join(prefix, 'lib', top, pkg, 'build/Release', addon)), `${top}/${pkg}/build/Release/${addon}`);
        }
      }
    }
  });

  test('the installed tree knows its commit (build-info.json, from the checkout), so strata --version names it', () => {
    const head = spawnSync('git', ['-C', REPO, 'rev-parse', 'HEAD'], { encoding: 'utf8' });
    if (head.status !== 0) return;
    const info = JSON.parse(fs.readFileSync(path.join(prefix, 'lib/build-info.json'), 'utf8')) as { commit: string };
    assert.match(info.commit, /^[0-9a-f]{40}$/);
    const v = run(strataBin, ['--version']);
    assert.equal(v.status, 0, v.stderr);
    assert.ok(v.stdout.includes(`commit ${info.commit.slice(0, 12)}`), v.stdout);
  });

  test('the installed tree stands alone: every link stays inside it', () => {
    const links = linksUnder(prefix);
    assert.ok(links.length > 0);
    const outside = links.filter((l) => !l.target.startsWith(`${prefix}/`) || !fs.existsSync(l.target));
    assert.deepEqual(outside, []);
  });

  test('the installed strata runs from anywhere, also through a symlink: --help of the CLI and both services', () => {
    const link = path.join(work, 'strata-link');
    fs.symlinkSync(strataBin, link);
    try {
      for (const bin of [strataBin, link]) {
        const cli = run(bin, ['--help']);
        assert.equal(cli.status, 0, cli.stderr);
        assert.match(cli.stdout, /^Usage: strata /);
        for (const role of ['resolver', 'agent']) {
          const r = run(bin, [role, '--help']);
          assert.equal(r.status, 0, r.stderr);
          assert.match(r.stdout, new RegExp(`^Usage: strata ${role} `));
        }
      }
    } finally {
      fs.rmSync(link);
    }
  });

  test('a second install replaces the tree whole', () => {
    const stray = path.join(prefix, 'lib/stray-file');
    fs.writeFileSync(stray, 'left from an older install\n');
    const r = install(['--prefix', prefix, '--no-systemd', '--no-check']);
    assert.equal(r.status, 0, r.out);
    assert.ok(!fs.existsSync(stray));
    assert.deepEqual(fs.readdirSync(prefix).sort(), ['bin', 'lib']);
    assert.equal(run(strataBin, ['--help']).status, 0);
  });

  test('refuses a relative prefix, a missing value and unknown options', () => {
    const relative = install(['--prefix', 'opt/strata', '--no-systemd']);
    assert.notEqual(relative.status, 0);
    assert.match(relative.out, /absolute/);
    assert.equal(install(['--bogus']).status, 2);
    assert.equal(install(['--prefix']).status, 1);
  });

  test('--destdir stages the host part: units rewritten to the prefix, their ExecStart installed, the Redis file, the link', () => {
    const dest = path.join(work, 'stage');
    const staged = '/opt/strata-staged';
    const r = install(['--destdir', dest, '--prefix', staged]);
    assert.equal(r.status, 0, r.out);
    try {
      for (const name of UNITS) {
        const shipped = fs.readFileSync(path.join(DEPLOY, 'systemd', name), 'utf8');
        const file = path.join(dest, 'etc/systemd/system', name);
        const text = fs.readFileSync(file, 'utf8');
        assert.equal(text.replaceAll(`${staged}/`, '/opt/strata/'), shipped, `${name} differs from the shipped unit only in its prefix`);
        const exec = execStart(readUnit(file))[0];
        assert.equal(exec, `${staged}/bin/strata`);
        assert.ok(fs.statSync(path.join(dest, exec)).mode & 0o111, `${exec} is installed and executable`);
      }
      assert.equal(
        fs.readFileSync(path.join(dest, 'etc/redis/redis-strata-cache.conf'), 'utf8'),
        fs.readFileSync(path.join(DEPLOY, 'systemd/redis-strata-cache.conf'), 'utf8'),
      );
      assert.equal(fs.readlinkSync(path.join(dest, 'usr/local/bin/strata')), `${staged}/bin/strata`);
      // The units' configuration files, as shipped; an operator's own is kept by the next install.
      for (const role of ['resolver', 'agent']) {
        assert.equal(fs.readFileSync(path.join(dest, 'etc/strata', `${role}.yaml`), 'utf8'), fs.readFileSync(path.join(DEPLOY, 'config', `${role}.yaml`), 'utf8'));
      }
      assert.equal(fs.statSync(path.join(dest, 'etc/strata/tls')).mode & 0o777, 0o750);
      fs.writeFileSync(path.join(dest, 'etc/strata/resolver.yaml'), 'listen: 127.0.0.1:7400\n');
      const again = install(['--destdir', dest, '--prefix', staged, '--no-check']);
      assert.equal(again.status, 0, again.out);
      assert.equal(fs.readFileSync(path.join(dest, 'etc/strata/resolver.yaml'), 'utf8'), 'listen: 127.0.0.1:7400\n');
      const cli = run(path.join(dest, staged, 'bin/strata'), ['--help']);
      assert.equal(cli.status, 0, cli.stderr);
    } finally {
      fs.rmSync(dest, { recursive: true, force: true });
    }
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  test(
    'systemd-analyze verify finds nothing to say about the installed units',
    { skip: analyze.status === 0 ? false : 'systemd-analyze is not installed' },
    () => {
      const dest = path.join(work, 'verify');
      const r = install(['--destdir', dest, '--no-check']);
      assert.equal(r.status, 0, r.out);
      try {
        // verify --root resolves the units' dependencies (sysinit.target...) and ExecStart inside the root.
        const system = fs.existsSync('/usr/lib/systemd/system') ? '/usr/lib/systemd/system' : '/lib/systemd/system';
        fs.mkdirSync(path.join(dest, 'usr/lib/systemd'), { recursive: true });
        fs.cpSync(system, path.join(dest, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
        const units = UNITS.map((u) => path.join(dest, 'etc/systemd/system', u));
        const v = spawnSync('systemd-analyze', ['verify', '--man=no', `--root=${dest}`, ...units], { encoding: 'utf8' });
        // Unknown or misspelled settings are only warnings: any output is a finding.
        assert.equal(`${v.stdout}${v.stderr}`, '');
        assert.equal(v.status, 0);
        // And verify does look at ExecStart: without the wrapper it fails.
        fs.rmSync(path.join(dest, 'opt/strata/bin/strata'));
        const missing = spawnSync('systemd-analyze', ['verify', '--man=no', `--root=${dest}`, ...units], { encoding: 'utf8' });
        assert.notEqual(missing.status, 0);
        assert.match(missing.stderr, /opt\/strata\/bin\/strata/);
      } finally {
        fs.rmSync(dest, { recursive: true, force: true });
      }
    },
  );
});

// ---- the installed services under the units' privileges ----

interface Started {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  ready?: Record<string, unknown>;
  /** Set when it exited before it was ready. */
  exited?: { code: number | null; output: string };
  stop(): Promise<number | null>;
}

/** `setpriv <privileges> -- PREFIX/bin/strata <args>`, resolved once it logs `readyEvent` or exits. */
async function startUnder(privileges: string[], args: string[], readyEvent: string): Promise<Started> {
  const child = spawn('setpriv', [...privileges, '--', strataBin, ...args], { cwd: '/', env: { PATH, STRATA_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  const text: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (l) => {
    text.push(l);
    try {
      logs.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      logs.push({ event: 'text', text: l });
    }
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const s: Started = {
    child,
    logs,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      try {
        return await exit;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  await waitFor(`strata ${args[0]} under setpriv`, () => {
    s.ready = logs.find((l) => l.event === readyEvent);
    if (s.ready) return true;
    if (child.exitCode !== null || child.signalCode !== null) {
      s.exited = { code: child.exitCode, output: text.join('\n') };
      return true;
    }
    return undefined;
  }, 30_000);
  return s;
}

/** setpriv's name of a capability: CAP_SYS_ADMIN → sys_admin. */
const capName = (cap: string): string => cap.replace(/^CAP_/, '').toLowerCase();
const capList = (caps: readonly string[]): string => ['-all', ...caps.map((c) => `+${capName(c)}`)].join(',');

/** What systemd does with User=, AmbientCapabilities=, CapabilityBoundingSet= and NoNewPrivileges=yes. */
function unitPrivileges(user: number | undefined, ambient: readonly string[], bounding: readonly string[]): string[] {
  return [
    ...(user === undefined ? [] : [`--reuid=${user}`, `--regid=${user}`, '--clear-groups']),
    `--inh-caps=${capList(ambient)}`,
    ...(user === undefined ? [] : [`--ambient-caps=${capList(ambient)}`]),
    `--bounding-set=${capList(bounding)}`,
    '--no-new-privs',
  ];
}

function effectiveCaps(pid: number): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return BigInt(`0x${m![1]}`);
}

function capMask(caps: readonly string[]): bigint {
  return caps.reduce((m, c) => m | (1n << BigInt(CAP_BITS[c])), 0n);
}

function mountedAt(mountpoint: string): string | undefined {
  const line = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === mountpoint);
  return line?.split(' - ')[1]?.split(' ')[0];
}

const setpriv = spawnSync('setpriv', ['--version'], { encoding: 'utf8' }).status === 0;
const privSkip = process.getuid?.() !== 0 ? 'needs root' : !setpriv ? 'needs setpriv (util-linux)' : false;

describe('the installed services with exactly the units’ privileges', { skip: privSkip }, () => {
  const resolverUnit = readUnit(path.join(DEPLOY, 'systemd/strata-resolver.service'));
  const agentUnit = readUnit(path.join(DEPLOY, 'systemd/strata-agent.service'));
  const resolverCaps = words(resolverUnit, 'Service', 'AmbientCapabilities');
  let fx: StoreFixture;
  let full: Started | undefined;

  before(async () => {
    // Layer files keep their owners and modes: root's 0700 directory and 0600 file,
    // and an opaque directory (trusted.overlay.opaque) over a base with other entries.
    fx = await makeStore([
      {
        entries: [
          { type: 'file', path: '/etc/a', content: 'a\n' },
          { type: 'file', path: '/etc/b', content: 'b\n' },
        ],
      },
      {
        entries: [
          { type: 'dir', path: '/etc', opaque: true },
          { type: 'file', path: '/etc/c', content: 'c\n' },
          { type: 'dir', path: '/private', mode: 0o700 },
          { type: 'file', path: '/private/key', content: 'k\n', mode: 0o600 },
        ],
      },
    ]);
    fs.chmodSync(fx.store, 0o755);
    fs.chmodSync(path.join(fx.store, 'layers'), 0o755);
    // The catalog belongs to the service user, as install.sh makes it for user strata.
    spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, path.join(fx.store, '.strata')]);
  });

  after(async () => {
    await full?.stop();
    fx?.cleanup();
  });

  /** What a client sees of the store through a resolver; undefined for each read that failed. */
  function view(address: string): { etc?: string[]; privateDir?: string[]; key?: string } {
    const env = { STRATA_RESOLVER: address };
    const ls = (p: string): string[] | undefined => {
      const r = run(strataBin, ['ls', 'l1', p, '--json'], env);
      return r.status === 0 ? (JSON.parse(r.stdout) as { entries: { name: string }[] }).entries.map((e) => e.name) : undefined;
    };
    const cat = run(strataBin, ['cat', 'l1', '/private/key'], env);
    return { etc: ls('/etc'), privateDir: ls('/private'), key: cat.status === 0 ? cat.stdout : undefined };
  }

  const RIGHT = { etc: ['c'], privateDir: ['key'], key: 'k\n' };

  test('the resolver as user nobody with the unit’s capabilities serves opaque directories and 0700 files right', async () => {
    assert.deepEqual([...resolverCaps].sort(), [...words(resolverUnit, 'Service', 'CapabilityBoundingSet')].sort());
    full = await startUnder(unitPrivileges(NOBODY, resolverCaps, resolverCaps), ['resolver', '--store', fx.store, '--listen', '127.0.0.1:0'], 'resolver.listening');
    assert.equal(full.exited, undefined, full.exited?.output);
    const pid = full.child.pid!;
    assert.equal(effectiveCaps(pid), capMask(resolverCaps));
    assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${NOBODY}\\s`, 'm'));
    assert.deepEqual(view(`127.0.0.1:${String(full.ready!.port)}`), RIGHT);
    // The catalog is the resolver's to write.
    const created = run(strataBin, ['layer', 'create', '--source', 'dir:layers/1', '--base', 'l0', '--type', 'snapshot', '--name', 'again', '--json'], {
      STRATA_RESOLVER: `127.0.0.1:${String(full.ready!.port)}`,
    });
    assert.equal(created.status, 0, created.stderr);
  });

  for (const missing of resolverCaps) {
    test(`without ${missing} the resolver does not serve that tree: it fails or refuses, never the same answers`, async (t) => {
      const caps = resolverCaps.filter((c) => c !== missing);
      const s = await startUnder(unitPrivileges(NOBODY, caps, caps), ['resolver', '--store', fx.store, '--listen', '127.0.0.1:0'], 'resolver.listening');
      try {
        if (s.exited) {
          // Refusing to start is never a wrong tree, if it says why.
          t.diagnostic(`refused to start: ${s.exited.output}`);
          assert.match(s.exited.output, /CAP_|capabilit|permission|EPERM|EACCES/i);
          return;
        }
        const seen = view(`127.0.0.1:${String(s.ready!.port)}`);
        t.diagnostic(`served ${JSON.stringify(seen)}`);
        assert.notDeepEqual(seen, RIGHT);
      } finally {
        await s.stop();
      }
    });
  }

  test(
    'the agent as root with only the unit’s bounding set mounts a layer, leaves it to its successor on SIGTERM; strata umount clears it',
    { skip: canMountFuse() ? false : 'needs /dev/fuse' },
    async () => {
      assert.ok(full?.ready, 'the resolver of the first test runs');
      const bounding = words(agentUnit, 'Service', 'CapabilityBoundingSet');
      const run_ = path.join(work, 'run');
      const mnt = path.join(work, 'mnt');
      fs.mkdirSync(mnt);
      const socket = path.join(run_, 'agent.sock');
      assert.equal(path.basename(socket), path.basename(configValue(readConfig('agent', 'systemd'), 'socket') ?? ''));
      const agent = await startUnder(
        unitPrivileges(undefined, words(agentUnit, 'Service', 'AmbientCapabilities'), bounding),
        ['agent', '--resolver', `127.0.0.1:${String(full.ready.port)}`, '--socket', socket],
        'agent.ready',
      );
      try {
        assert.equal(agent.exited, undefined, agent.exited?.output);
        assert.equal(effectiveCaps(agent.child.pid!), capMask(bounding));
        const m = run(strataBin, ['mount', 'l1', mnt, '--socket', socket, '--json']);
        assert.equal(m.status, 0, m.stderr);
        assert.equal(mountedAt(mnt), 'fuse.strata');
        assert.deepEqual(fs.readdirSync(path.join(mnt, 'etc')), ['c']);
        assert.equal(fs.readFileSync(path.join(mnt, 'private/key'), 'utf8'), 'k\n');
        assert.equal(await agent.stop(), 0);
        // Handed over (the unit's capabilities suffice for the fd holder): kept for the next agent, not unmounted.
        assert.equal(mountedAt(mnt), 'fuse.strata', 'SIGTERM leaves the mount to a successor');
        const u = run(strataBin, ['umount', mnt, '--socket', socket]);
        assert.equal(u.status, 0, u.stderr);
        assert.equal(mountedAt(mnt), undefined, 'strata umount without an agent clears it');
      } finally {
        await agent.stop();
        forceUnmount(mnt);
      }
    },
  );
});
