import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { STRATA_BIN, freePort, strata } from '@strata/harness';

/** How long a service may take to say it is ready. */
const READY_MS = 15_000;

interface Running {
  child: ChildProcess;
  /** Every stderr line so far. */
  lines: string[];
  ready: Record<string, unknown>;
  stop(): Promise<void>;
}

const running: Running[] = [];

/** The JSON log lines of an event, in order. */
function logEvents(r: Running, event: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of r.lines) {
    try {
      const v = JSON.parse(line) as Record<string, unknown>;
      if (v.event === event) out.push(v);
    } catch {
      // Not a log line.
    }
  }
  return out;
}

/**
 * `strata <role> <args>` with exactly the flags given (the harness adds
 * --listen and --store, which would hide the configuration file).
 */
async function start(role: 'resolver' | 'agent', args: string[], env: Record<string, string> = {}, cwd?: string): Promise<Running> {
  const readyEvent = role === 'resolver' ? 'resolver.listening' : 'agent.ready';
  const child = spawn(process.execPath, [STRATA_BIN, role, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${readyEvent} within ${READY_MS} ms:\n${lines.join('\n')}`)), READY_MS);
    readline.createInterface({ input: child.stderr! }).on('line', (line) => {
      lines.push(line);
      try {
        const v = JSON.parse(line) as Record<string, unknown>;
        if (v.event === readyEvent) {
          clearTimeout(timer);
          resolve(v);
        }
      } catch {
        // Not a log line.
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`strata ${role} exited before ${readyEvent}:\n${lines.join('\n')}`));
    });
  });
  const r: Running = {
    child,
    lines,
    ready,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  running.push(r);
  return r;
}

let dir: string;
let store: string;
let fileSeq = 0;

function yamlFile(text: string): string {
  const p = path.join(dir, `resolver-${++fileSeq}.yaml`);
  fs.writeFileSync(p, text);
  return p;
}

/** A port something else is listening on, for as long as the returned server stays open. */
async function busyPort(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

interface Effective {
  configFile: string | null;
  options: Record<string, { value: unknown; source: string; where?: string }>;
  shadowed: string[];
}

function checkJson(args: string[], env: Record<string, string> = {}): Effective {
  const r = strata(['resolver', '--check-config', '--json', ...args], env);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  return JSON.parse(r.stdout) as Effective;
}

/** The long flags --help lists. */
/** An empty file standing in for a PEM file (its contents are not read by --check-config). */
function pem(name: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, '');
  return f;
}

function helpFlags(role: string): string[] {
  const r = strata([role, '--help']);
  assert.equal(r.status, 0, r.stderr);
  return [...r.stdout.matchAll(/^ {2}(?:-\w, )?--([a-z][a-z0-9-]*)/gm)].map((m) => m[1]);
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-resolver-config-'));
  store = path.join(dir, 'store');
  fs.mkdirSync(store);
});

after(async () => {
  for (const r of running) await r.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('strata resolver --config', () => {
  test('values from the file take effect: it listens where the file says', async () => {
    const port = await freePort();
    const f = yamlFile(`# the resolver of this test\nstore: ${store}\nlisten: 127.0.0.1:${port}\ncache-mb: 64\n`);
    const r = await start('resolver', ['--config', f]);
    assert.equal(r.ready.port, port);
    assert.equal(r.ready.cacheMb, 64);
    assert.equal(r.ready.store, store);
    const list = strata(['layer', 'list', '--json'], { STRATA_RESOLVER: `127.0.0.1:${port}` });
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual((JSON.parse(list.stdout) as { layers: unknown[] }).layers, []);
    await r.stop();
  });

  test('a flag beats the file, a variable beats the file, $STRATA_RESOLVER_CONFIG names the file', async () => {
    const [filePort, flagPort, envPort] = [await freePort(), await freePort(), await freePort()];
    const f = yamlFile(`store: ${store}\nlisten: 127.0.0.1:${filePort}\n`);
    const byFlag = await start('resolver', ['--config', f, '--listen', `127.0.0.1:${flagPort}`], { STRATA_LISTEN: `127.0.0.1:${envPort}` });
    assert.equal(byFlag.ready.port, flagPort);
    // The file's value lost, and the resolver says so at warn before it is ready (issue 23 item 4).
    const shadowed = logEvents(byFlag, 'config.shadowed');
    assert.deepEqual(
      shadowed.map((l) => [l.level, l.option, l.detail]),
      [['warn', 'listen', `listen: --listen overrides $STRATA_LISTEN, ${f}:2`]],
    );
    await byFlag.stop();
    const byEnv = await start('resolver', [], { STRATA_RESOLVER_CONFIG: f, STRATA_LISTEN: `127.0.0.1:${envPort}` });
    assert.equal(byEnv.ready.port, envPort);
    assert.deepEqual(logEvents(byEnv, 'config.shadowed').map((l) => l.detail), [`listen: $STRATA_LISTEN overrides ${f}:2`]);
    await byEnv.stop();

    const eff = checkJson(['--config', f, '--cache-mb', '9'], { STRATA_LISTEN: `127.0.0.1:${envPort}` });
    assert.equal(eff.configFile, f);
    assert.deepEqual(eff.options.listen, { value: `127.0.0.1:${envPort}`, source: 'env', where: '$STRATA_LISTEN' });
    assert.deepEqual(eff.shadowed, [`listen: $STRATA_LISTEN overrides ${f}:2`]);
    assert.deepEqual(eff.options.store, { value: store, source: 'file', where: `${f}:1` });
    assert.deepEqual(eff.options['cache-mb'], { value: 9, source: 'flag', where: '--cache-mb' });
    assert.deepEqual(eff.options['grace-ms'], { value: 10_000, source: 'default' });
    assert.deepEqual(eff.options['metrics-port'], { value: null, source: 'unset' });
  });

  test('every flag of the resolver can be set in the file', () => {
    const NOT_CONFIG = ['config', 'check-config', 'json', 'help'];
    // A boolean's --no-X is the same key as its --X.
    const keys = helpFlags('resolver').filter((f) => !NOT_CONFIG.includes(f) && !f.startsWith('no-'));
    assert.deepEqual(Object.keys(checkJson([]).options).sort(), [...keys].sort(), '--help and the configuration keys agree');
    // A value for each, none of them the default; a flag added without one here fails this test.
    const sample: Record<string, string> = {
      store,
      listen: '127.0.0.1:7499',
      'data-listen': '127.0.0.1:7498',
      redis: 'redis://127.0.0.1:6390',
      'cache-mb': '32',
      'grace-ms': '500',
      'metrics-listen': '127.0.0.1:9465',
      'metrics-port': '9464',
      'log-level': 'debug',
      // Only checked to exist here: --check-config does not load them.
      'tls-cert': pem('server.crt'),
      'tls-key': pem('server.key'),
      'tls-client-ca': pem('ca.crt'),
      plaintext: 'false',
      'unenforced-read-only': 'false',
      admin: 'spiffe://strata.test/admin',
      'audit-log': path.join(dir, 'audit.log'),
      'max-message-bytes': '65536',
      'max-streams-per-identity': '16',
      'session-inflight': '8',
    };
    assert.deepEqual(Object.keys(sample).sort(), [...keys].sort());
    const f = yamlFile(keys.map((k) => `${k}: ${sample[k]}`).join('\n'));
    const eff = checkJson(['--config', f]);
    keys.forEach((k, i) => assert.deepEqual(eff.options[k].where, `${f}:${i + 1}`, k));
  });

  test('problems in the file name file:line, one line each, exit 2', () => {
    const f = yamlFile(`store: ${store}\nlisten: 127.0.0.1:7400\ncach-mb: 10\ngrace-ms: lots\n`);
    const r = strata(['resolver', '--config', f]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `strata resolver: ${f}:3: unknown key "cach-mb" (did you mean cache-mb?)\nstrata resolver: ${f}:4: grace-ms: expected a positive integer, got "lots"\n`);

    const syntax = yamlFile('listen: [127.0.0.1:7400\n');
    const s = strata(['resolver', '--check-config', '--config', syntax]);
    assert.equal(s.status, 2);
    assert.match(s.stderr, new RegExp(`^strata resolver: ${syntax}:2: YAML: [^\\n]+\\n$`));
    const list = yamlFile('- listen: 127.0.0.1:7400\n');
    assert.equal(strata(['resolver', '--check-config', '--config', list]).stderr, `strata resolver: ${list}:1: expected a mapping of option names to values (like "listen: 127.0.0.1:7400"), got a list\n`);
    const missing = strata(['resolver', '--check-config', '--config', path.join(dir, 'nope.yaml')]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^strata resolver: .*nope\.yaml: cannot read it: no such file or directory \(ENOENT\)\n$/);
  });

  test('--check-config prints the effective configuration as YAML and starts nothing', async () => {
    const busy = await busyPort();
    try {
      const f = yamlFile(`listen: 127.0.0.1:${busy.port}\nredis: redis://user:secret@127.0.0.1:6379/0\n`);
      // The default store is ./store: --check-config must not create it.
      const cwd = fs.mkdtempSync(path.join(dir, 'cwd-'));
      const r = spawnSync(process.execPath, [STRATA_BIN, 'resolver', '--check-config', '--config', f, '--grace-ms', '100'], { cwd, encoding: 'utf8', env: { ...process.env, STRATA_STORE: '' } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.equal(
        r.stdout,
        [
          '# strata resolver: configuration is valid',
          `# config file: ${f} (from --config)`,
          `store: ${path.join(cwd, 'store')} # default`,
          `listen: 127.0.0.1:${busy.port} # ${f}:1`,
          '# data-listen: not set',
          `redis: redis://user:***@127.0.0.1:6379/0 # ${f}:2`,
          '# tls-cert: not set',
          '# tls-key: not set',
          '# tls-client-ca: not set',
          '# plaintext: not set',
          '# unenforced-read-only: not set',
          '# admin: not set',
          '# audit-log: not set',
          'max-message-bytes: 1048576 # default',
          'max-streams-per-identity: 32 # default',
          'session-inflight: 64 # default',
          'cache-mb: 256 # default',
          'grace-ms: 100 # --grace-ms',
          '# metrics-listen: not set',
          '# metrics-port: not set',
          'log-level: info # default',
          '',
        ].join('\n'),
      );
      assert.equal(fs.existsSync(path.join(cwd, 'store')), false, 'the default store was not created');
    } finally {
      await busy.close();
    }
  });

  test('--check-config finds every problem and exits 2', () => {
    const f = yamlFile(`store: ${path.join(dir, 'no-such-store')}\nredis: http://127.0.0.1:6379\nmetrics-port: 0\n`);
    const r = strata(['resolver', '--check-config', '--config', f, '--listen', 'garbage']);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.deepEqual(r.stderr.trimEnd().split('\n'), [
      'strata resolver: --listen: expected HOST:PORT (e.g. 127.0.0.1:7400), got "garbage"',
      `strata resolver: ${f}:1: store: ${path.join(dir, 'no-such-store')} does not exist (only the default ./store is created)`,
      `strata resolver: ${f}:2: redis: expected redis://, rediss:// or redis+cluster:// URL, got "http://127.0.0.1:6379"`,
      `strata resolver: ${f}:3: metrics-port: port 0 is out of range (1-65535)`,
    ]);
    assert.equal(strata(['resolver', '--json']).status, 2, '--json alone is a usage error');
    const usage = strata(['resolver', '--check-config', '--lisen', 'x']);
    assert.equal(usage.status, 2);
    assert.equal(usage.stderr, "strata resolver: unknown option '--lisen' (Did you mean --listen?)\n");
  });
});

describe('strata resolver start-up errors', () => {
  test('a busy --listen port: one line, exit 1, nothing from grpc-js', async () => {
    const busy = await busyPort();
    try {
      const r = strata(['resolver', '--store', store, '--listen', `127.0.0.1:${busy.port}`]);
      assert.equal(r.status, 1);
      // Without root the resolver also logs which capabilities it lacks: a log line, not part of the failure.
      const stderr = r.stderr.replace(/^\{.*"event":"resolver\.privileges".*\n/m, '');
      assert.equal(stderr, `strata resolver: cannot listen on 127.0.0.1:${busy.port}: address already in use\n`);
      // The same at debug level, where grpc-js would be loudest.
      const debug = strata(['resolver', '--store', store, '--listen', `127.0.0.1:${busy.port}`, '--log-level', 'debug'], { GRPC_VERBOSITY: 'DEBUG' });
      assert.equal(debug.status, 1);
      assert.equal(debug.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{')).length, 1, debug.stderr);
      assert.doesNotMatch(debug.stderr, /^[EID] /m);
    } finally {
      await busy.close();
    }
  });

  test('addresses are checked before use: one line, exit 2', () => {
    const cases: [string, RegExp][] = [
      ['garbage', /^strata resolver: --listen: expected HOST:PORT \(e\.g\. 127\.0\.0\.1:7400\), got "garbage"\n$/],
      ['http://x:1', /^strata resolver: --listen: expected HOST:PORT, not a URL, got "http:\/\/x:1"\n$/],
      ['127.0.0.1:99999', /^strata resolver: --listen: port 99999 is out of range \(0-65535\) in "127\.0\.0\.1:99999"\n$/],
    ];
    for (const [listen, expected] of cases) {
      const r = strata(['resolver', '--store', store, '--listen', listen]);
      assert.equal(r.status, 2, listen);
      assert.match(r.stderr, expected);
    }
    const env = strata(['resolver', '--store', store], { STRATA_LISTEN: 'http://x:1' });
    assert.equal(env.status, 2);
    assert.match(env.stderr, /^strata resolver: \$STRATA_LISTEN: expected HOST:PORT, not a URL/);
  });

  test('--store: a directory given must exist; only the default ./store is created, at start', async () => {
    const r = strata(['resolver', '--store', path.join(dir, 'absent'), '--listen', '127.0.0.1:0']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^strata resolver: --store: .*absent does not exist \(only the default \.\/store is created\)\n$/);
    assert.equal(fs.existsSync(path.join(dir, 'absent')), false);
    const cwd = fs.mkdtempSync(path.join(dir, 'cwd-'));
    const started = await start('resolver', ['--listen', '127.0.0.1:0'], { STRATA_STORE: '' }, cwd);
    assert.equal(started.ready.store, path.join(cwd, 'store'));
    assert.ok(fs.statSync(path.join(cwd, 'store')).isDirectory());
    await started.stop();
    const help = strata(['resolver', '--help']).stdout.replace(/\s+/g, ' ');
    assert.match(help, /--store <dir> image store root; a directory given here must exist \(\$STRATA_STORE; default \.\/store in the working directory, the one store created if missing\)/);
  });
});
