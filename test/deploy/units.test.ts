import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '@strata/harness';
import {
  DEPLOY,
  DEPLOYMENT_MD,
  UNITS,
  commandLineProblems,
  defaultPrefix,
  documentedCapabilities,
  envVarsRead,
  environment,
  execStart,
  flagValue,
  readUnit,
  single,
  values,
  words,
  type Assignment,
} from './deploy-files';

/** The shipped units, read the way systemd reads them. */

const unit = (name: string): Assignment[] => readUnit(path.join(DEPLOY, 'systemd', name));
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
    test(`${name}: ExecStart is the wrapper install.sh puts at its default prefix, with flags strata has`, () => {
      const argv = execStart(unit(name));
      assert.equal(argv[0], `${defaultPrefix()}/bin/strata`);
      assert.deepEqual(commandLineProblems(argv.slice(1)), []);
      assert.equal(argv[1], name === 'strata-resolver.service' ? 'resolver' : 'agent');
    });

    test(`${name}: every variable it sets is one strata reads`, () => {
      const read = envVarsRead();
      const set = [...environment(unit(name)).keys()];
      assert.ok(set.length > 0);
      assert.deepEqual(
        set.filter((v) => !read.has(v)),
        [],
      );
    });

    test(`${name}: stops with SIGTERM to the service alone, restarts after a failure`, () => {
      const u = unit(name);
      assert.equal(single(u, 'Service', 'KillSignal'), 'SIGTERM');
      assert.equal(single(u, 'Service', 'KillMode'), 'mixed');
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
    const store = flagValue(execStart(resolver), '--store');
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
    const socket = flagValue(execStart(agent), '--socket');
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
