import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from '@strata/harness';
import {
  DEPLOY,
  DEPLOYMENT_MD,
  UNITS,
  commandLineProblems,
  defaultPrefix,
  documentedCapabilities,
  checkConfig,
  configValue,
  envVarsRead,
  environment,
  execStart,
  readConfig,
  rewrittenConfig,
  readUnit,
  single,
  values,
  words,
  type Assignment,
} from './deploy-files';

/** The shipped units, read the way systemd reads them. */

const unit = (name: string): Assignment[] => readUnit(path.join(DEPLOY, 'systemd', name));
const roleOf = (name: string): 'resolver' | 'agent' => (name === 'strata-resolver.service' ? 'resolver' : 'agent');
const resolver = unit('strata-resolver.service');
const agent = unit('strata-agent.service');

/** Settings that give a service a mount namespace of its own: the agent's FUSE mounts would never reach the host. */
const NAMESPACING = [
  'ProtectSystem',
  'ProtectHome',
  'PrivateTmp',
  'PrivateDevices',
  'PrivateMounts',
  'PrivateUsers',
  'ProtectKernelTunables',
  'ProtectKernelModules',
  'ProtectKernelLogs',
  'ProtectControlGroups',
  'ProtectProc',
  'ProcSubset',
  'ReadOnlyPaths',
  'ReadWritePaths',
  'InaccessiblePaths',
  'ExecPaths',
  'NoExecPaths',
  'TemporaryFileSystem',
  'BindPaths',
  'BindReadOnlyPaths',
  'RootDirectory',
  'RootImage',
  'MountAPIVFS',
  'DynamicUser',
];

describe('systemd units', () => {
  for (const name of UNITS) {
    test(`${name}: ExecStart is the wrapper install.sh puts at its default prefix, running --config /etc/strata/<role>.yaml and nothing else`, () => {
      const argv = execStart(unit(name));
      const role = roleOf(name);
      assert.equal(argv[0], `${defaultPrefix()}/bin/strata`);
      assert.deepEqual(commandLineProblems(argv.slice(1)), []);
      assert.deepEqual(argv.slice(1), [role, '--config', `/etc/strata/${role}.yaml`]);
    });

    test(`${name}: sets no variable and reads no environment file, so nothing beats its configuration file`, () => {
      const u = unit(name);
      const read = envVarsRead();
      assert.deepEqual([...environment(u).keys()].filter((v) => read.has(v) || v.startsWith('STRATA_')), []);
      assert.deepEqual(values(u, 'Service', 'EnvironmentFile'), []);
    });

    test(`${name}: its configuration file (deploy/config) is valid as the unit runs it — every value from the file, none shadowed, mutual TLS on`, () => {
      const role = roleOf(name);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-unit-config-'));
      try {
        // The host paths the file names, made here: the store, the TLS files, the runtime and cache directories.
        for (const d of ['store', 'tls', 'run', 'cache']) fs.mkdirSync(path.join(dir, d));
        const config = readConfig(role, 'systemd');
        for (const key of ['tls-cert', 'tls-key', 'tls-client-ca', 'tls-ca']) {
          const f = configValue(config, key);
          if (f) fs.writeFileSync(path.join(dir, 'tls', path.basename(f)), 'PEM\n');
        }
        const file = rewrittenConfig(role, 'systemd', dir, {
          '/srv/strata/store': path.join(dir, 'store'),
          '/etc/strata/tls': path.join(dir, 'tls'),
          '/run/strata': path.join(dir, 'run'),
          '/var/cache/strata': path.join(dir, 'cache'),
        });
        // The unit's environment is all the service gets besides PATH.
        const r = checkConfig(role, file, Object.fromEntries(environment(unit(name))));
        assert.equal(r.status, 0, r.stderr);
        const doc = r.doc!;
        assert.deepEqual(doc.shadowed, []);
        for (const key of Object.keys(config)) assert.equal(doc.options[key]?.source, 'file', `${key} comes from the file`);
        for (const [key, o] of Object.entries(doc.options)) assert.ok(o.source === 'file' || o.source === 'default' || o.source === 'unset', `${key} from ${o.source}`);
        const tlsKeys = role === 'resolver' ? ['tls-cert', 'tls-key', 'tls-client-ca'] : ['tls-ca', 'tls-cert', 'tls-key'];
        for (const key of tlsKeys) assert.ok(configValue(config, key)?.startsWith('/etc/strata/tls/'), `${key} is on by default`);
        assert.equal(config.plaintext, undefined, 'plaintext is not the default');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    test(`${name}: a TLS file the configuration names and the host lacks stops the start, naming it`, () => {
      const role = roleOf(name);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-unit-notls-'));
      try {
        for (const d of ['store', 'run', 'cache']) fs.mkdirSync(path.join(dir, d));
        const file = rewrittenConfig(role, 'systemd', dir, {
          '/srv/strata/store': path.join(dir, 'store'),
          '/etc/strata/tls': path.join(dir, 'no-tls'),
          '/run/strata': path.join(dir, 'run'),
          '/var/cache/strata': path.join(dir, 'cache'),
        });
        const r = checkConfig(role, file);
        assert.equal(r.status, 2);
        assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:\\d+: tls-[a-z-]+: .*no-tls/.*(does not exist|ENOENT)`));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    test(`${name}: stops with SIGTERM to the service alone, restarts after a failure`, () => {
      const u = unit(name);
      assert.equal(single(u, 'Service', 'KillSignal'), 'SIGTERM');
      // The agent's fd holder outlives a restart (its mounts are taken over): only the agent is signalled.
      assert.equal(single(u, 'Service', 'KillMode'), name === 'strata-agent.service' ? 'process' : 'mixed');
      assert.equal(single(u, 'Service', 'Restart'), 'on-failure');
      assert.equal(single(u, 'Install', 'WantedBy'), 'multi-user.target');
    });
  }

  test('the resolver runs as its own user with exactly the documented capabilities', () => {
    assert.equal(single(resolver, 'Service', 'User'), 'strata');
    assert.equal(single(resolver, 'Service', 'DynamicUser'), undefined);
    const documented = documentedCapabilities().get('strata-resolver.service');
    assert.deepEqual([...(documented ?? [])].sort(), ['CAP_DAC_READ_SEARCH', 'CAP_SYS_ADMIN']);
    assert.deepEqual(words(resolver, 'Service', 'AmbientCapabilities').sort(), [...documented!].sort());
    assert.deepEqual(words(resolver, 'Service', 'CapabilityBoundingSet').sort(), [...documented!].sort());
    assert.equal(single(resolver, 'Service', 'NoNewPrivileges'), 'yes');
    // Capabilities inside a user namespace do not reach the store's trusted.* xattrs.
    assert.equal(single(resolver, 'Service', 'PrivateUsers'), undefined);
    // V8 writes the code it compiles.
    assert.equal(single(resolver, 'Service', 'MemoryDenyWriteExecute'), undefined);
  });

  test('the resolver sees the store read-only but for its catalog, and mounts nothing', () => {
    const config = readConfig('resolver', 'systemd');
    const store = configValue(config, 'store');
    // Its audit file, one per host, is in the catalog directory it may write.
    assert.ok(configValue(config, 'audit-log')?.startsWith(`${store}/.strata/`) && configValue(config, 'audit-log')?.includes('{host}'));
    assert.ok(store && path.isAbsolute(store), `--store ${String(store)}`);
    assert.equal(single(resolver, 'Service', 'ProtectSystem'), 'strict');
    assert.deepEqual(values(resolver, 'Service', 'ReadWritePaths'), [`${store}/.strata`]);
    const denied = values(resolver, 'Service', 'SystemCallFilter')
      .filter((v) => v.startsWith('~'))
      .flatMap((v) => v.slice(1).trim().split(/\s+/));
    assert.ok(denied.includes('@mount'), denied.join(' '));
    assert.equal(single(resolver, 'Service', 'SystemCallErrorNumber'), 'EPERM');
  });

  test('the agent is root with CAP_SYS_ADMIN alone and /dev/fuse the only device', () => {
    const user = single(agent, 'Service', 'User');
    assert.ok(user === undefined || user === 'root', `User=${String(user)}`);
    const documented = documentedCapabilities().get('strata-agent.service');
    assert.deepEqual([...(documented ?? [])], ['CAP_SYS_ADMIN']);
    assert.deepEqual(words(agent, 'Service', 'CapabilityBoundingSet'), ['CAP_SYS_ADMIN']);
    assert.equal(single(agent, 'Service', 'DevicePolicy'), 'closed');
    assert.deepEqual(values(agent, 'Service', 'DeviceAllow'), ['/dev/fuse rw']);
    assert.equal(single(agent, 'Service', 'NoNewPrivileges'), 'yes');
    assert.ok(words(agent, 'Service', 'SystemCallFilter').includes('@mount'));
  });

  test('the agent keeps its socket directory across restarts and has time to unmount', () => {
    const socket = configValue(readConfig('agent', 'systemd'), 'socket');
    const runtime = single(agent, 'Service', 'RuntimeDirectory');
    assert.ok(runtime);
    assert.equal(path.dirname(socket ?? ''), `/run/${runtime}`);
    assert.equal(single(agent, 'Service', 'RuntimeDirectoryPreserve'), 'yes');
    const stop = Number(single(agent, 'Service', 'TimeoutStopSec'));
    assert.ok(stop >= 30, `TimeoutStopSec=${stop}`);
  });

  test('the agent has no mount namespace of its own: its mounts are the host’s', () => {
    const present = NAMESPACING.filter((k) => values(agent, 'Service', k).length > 0);
    assert.deepEqual(present, []);
  });

  test('the agent tells systemd when its mounts are in place (Type=notify), so units can be ordered after them', () => {
    assert.equal(single(agent, 'Service', 'Type'), 'notify');
    assert.equal(single(agent, 'Service', 'NotifyAccess'), 'main');
  });

  test('the resolver stops within the unit’s timeout after its drain', () => {
    // --grace-ms defaults to 10 s; systemd must not SIGKILL a draining resolver.
    assert.ok(Number(single(resolver, 'Service', 'TimeoutStopSec')) > 10);
  });
});

describe('docs/deployment.md', () => {
  const text = fs.readFileSync(DEPLOYMENT_MD, 'utf8');

  test('names only files of the repository, and each of them exists', () => {
    const named = [...text.matchAll(/`((?:deploy|docs|bin|test)\/[^`\s]*)`/g)].map((m) => m[1].replace(/[),.]+$/, ''));
    assert.ok(named.length > 0);
    for (const rel of named) assert.ok(fs.existsSync(path.join(REPO, rel)), `${rel} does not exist`);
    for (const m of text.matchAll(/\]\(([^)]+)\)/g)) {
      const link = m[1];
      assert.ok(!/^[a-z]+:/.test(link) && !link.startsWith('/'), `link outside the repository: ${link}`);
      assert.ok(fs.existsSync(path.join(path.dirname(DEPLOYMENT_MD), link.split('#')[0])), `${link} does not exist`);
    }
  });

  test('says why each capability of each unit is there', () => {
    const caps = documentedCapabilities();
    assert.deepEqual([...caps.keys()].sort(), [...UNITS].sort());
  });

  test('mentions every file under deploy/', () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(dir, e.name));
        else files.push(path.relative(REPO, path.join(dir, e.name)));
      }
    };
    walk(DEPLOY);
    const missing = files.filter((f) => !text.includes(f) && !text.includes(path.basename(f)));
    assert.deepEqual(missing, []);
  });
});
