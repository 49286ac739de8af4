import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { STRATA_BIN, canMountFuse, forceUnmount, freePort, startResolver, strata, waitFor, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { within } from '../support/bounded';

const READY_MS = 15_000;
/** Short, so an unreachable resolver costs the tests half a second per wait. */
const DEADLINE = ['--deadline-ms', '500'];

interface Agent {
  child: ChildProcess;
  lines: string[];
  ready: Record<string, unknown>;
  /** The first JSON line with this event, waiting for it. */
  event(name: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

const agents: Agent[] = [];

/** `strata agent <args>` with exactly the flags given (the harness adds --resolver and --socket, which would hide the file). */
async function startAgent(args: string[], env: Record<string, string> = {}): Promise<Agent> {
  const child = spawn(process.execPath, [STRATA_BIN, 'agent', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: string[] = [];
  const parsed = (): Record<string, unknown>[] =>
    lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  readline.createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const event = (name: string, timeoutMs = READY_MS): Promise<Record<string, unknown>> =>
    waitFor(
      `${name}:\n${lines.join('\n')}`,
      () => {
        const found = parsed().find((l) => l.event === name);
        if (!found && child.exitCode !== null) throw new Error(`strata agent exited (${child.exitCode}) before ${name}:\n${lines.join('\n')}`);
        return found;
      },
      timeoutMs,
    );
  const a: Agent = {
    child,
    lines,
    ready: {},
    event,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await within('strata agent to exit on SIGTERM', exited, 30_000).catch(async (err: unknown) => {
        child.kill('SIGKILL');
        await within('strata agent to die of SIGKILL', exited, 10_000);
        throw err;
      });
    },
  };
  agents.push(a);
  a.ready = await event('agent.ready');
  return a;
}

let dir: string;
let fx: StoreFixture;
let resolver: ResolverProcess;
let fileSeq = 0;

function yamlFile(text: string, name = `agent-${++fileSeq}.yaml`): string {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  return p;
}

interface Effective {
  configFile: string | null;
  options: Record<string, { value: unknown; source: string; where?: string }>;
}

function checkJson(args: string[], env: Record<string, string> = {}): Effective {
  const r = strata(['agent', '--check-config', '--json', ...args], env);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  return JSON.parse(r.stdout) as Effective;
}

function nonJson(lines: string[]): string[] {
  return lines.filter((l) => !l.startsWith('{'));
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-agent-config-'));
  fx = await makeStore([{ entries: [{ type: 'file', path: '/hello', content: 'hello\n' }] }]);
  resolver = await startResolver({ store: fx.store });
});

after(async () => {
  for (const a of agents) await a.stop();
  await resolver?.stop();
  fx?.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('strata agent --config', () => {
  test('values from the file take effect; the socket path is relative to the file', async () => {
    const f = yamlFile(`resolver: [${resolver.address}]\nsocket: run/agent.sock\ndeadline-ms: 700\n`, 'conf/agent.yaml');
    const a = await startAgent(['--config', f]);
    assert.equal(a.ready.resolverReachable, true);
    assert.equal(a.ready.resolver, resolver.address);
    assert.equal(a.ready.socket, path.join(dir, 'conf/run/agent.sock'));
    assert.equal(a.ready.unreachable, undefined);
    assert.deepEqual(nonJson(a.lines), [], 'no warning when the resolver answers');
    const mounts = strata(['mounts', '--json', '--socket', path.join(dir, 'conf/run/agent.sock')]);
    assert.equal(mounts.status, 0, mounts.stderr);
    await a.stop();
  });

  test('a flag beats the file, $STRATA_RESOLVER beats the file, $STRATA_AGENT_CONFIG names the file', () => {
    const f = yamlFile('resolver: file-a:7400,file-b:7400\nchunk-cache-mb: 64\nmount:\n  - l0:/mnt/a\n');
    const byFlag = checkJson(['--config', f, '--resolver', 'flag:1', '--resolver', 'flag:2'], { STRATA_RESOLVER: 'env:1' });
    assert.deepEqual(byFlag.options.resolver, { value: ['flag:1', 'flag:2'], source: 'flag', where: '--resolver' });
    const byEnv = checkJson([], { STRATA_AGENT_CONFIG: f, STRATA_RESOLVER: 'env:1,env:2' });
    assert.equal(byEnv.configFile, f);
    assert.deepEqual(byEnv.options.resolver, { value: ['env:1', 'env:2'], source: 'env', where: '$STRATA_RESOLVER' });
    assert.deepEqual(byEnv.options['chunk-cache-mb'], { value: 64, source: 'file', where: `${f}:2` });
    assert.deepEqual(byEnv.options.mount, { value: ['l0:/mnt/a'], source: 'file', where: `${f}:3` });
    assert.deepEqual(checkJson(['--config', f]).options.resolver.value, ['file-a:7400', 'file-b:7400']);
  });

  test('every flag of the agent can be set in the file', () => {
    const pem = (name: string): string => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, '');
      return f;
    };
    const help = strata(['agent', '--help']);
    const keys = [...help.stdout.matchAll(/^ {2}(?:-\w, )?--([a-z][a-z0-9-]*)/gm)].map((m) => m[1]).filter((f) => !['config', 'check-config', 'json', 'help'].includes(f) && !f.startsWith('no-'));
    assert.deepEqual(Object.keys(checkJson([]).options).sort(), [...keys].sort(), '--help and the configuration keys agree');
    const sample: Record<string, string> = {
      resolver: '[a:1, b:2]',
      socket: `${dir}/s/agent.sock`,
      'socket-group': 'nogroup',
      'audit-log': `${dir}/audit.log`,
      mount: '[l0:/mnt/x]',
      'deadline-ms': '1234',
      'chunk-cache-mb': '8',
      'data-cache-mb': '64',
      'file-opens': 'kernel',
      'data-cache-dir': `${dir}/cache`,
      'attr-entries': '1000',
      'prefetch-entries': '0',
      'sealed-timeout': '60',
      'metrics-listen': '127.0.0.1:9466',
      'metrics-port': '9465',
      'log-level': 'warn',
      takeover: 'false',
      'request-timeout': '5',
      'store-view': dir,
      // Only checked to exist here: --check-config does not load them.
      'tls-ca': pem('ca.crt'),
      'tls-cert': pem('agent.crt'),
      'tls-key': pem('agent.key'),
    };
    assert.deepEqual(Object.keys(sample).sort(), [...keys].sort());
    const f = yamlFile(keys.map((k) => `${k}: ${sample[k]}`).join('\n'));
    const eff = checkJson(['--config', f]);
    keys.forEach((k, i) => assert.equal(eff.options[k].where, `${f}:${i + 1}`, k));
    assert.equal(eff.options['prefetch-entries'].value, 0);
  });

  test('--check-config as YAML; problems name file:line, one line each, exit 2', () => {
    const good = yamlFile(`resolver: [${resolver.address}]\nsocket: ${dir}/y/agent.sock\n`);
    const y = strata(['agent', '--check-config', '--config', good, '--deadline-ms', '900']);
    assert.equal(y.status, 0, y.stderr);
    assert.match(y.stdout, /^# strata agent: configuration is valid\n/);
    assert.ok(y.stdout.includes(`resolver: [ ${resolver.address} ] # ${good}:1\n`), y.stdout);
    assert.ok(y.stdout.includes('deadline-ms: 900 # --deadline-ms\n'));
    assert.ok(y.stdout.includes('# mount: not set\n'));
    assert.equal(fs.existsSync(path.join(dir, 'y')), false, '--check-config creates no socket directory');

    const bad = yamlFile('resolver: [a:1, "http://b:2"]\nmounts: [l0:/x]\nmount: [l0:relative, "bad name:/x"]\nprefetch-entries: -5\n');
    const r = strata(['agent', '--check-config', '--config', bad]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.deepEqual(r.stderr.trimEnd().split('\n'), [
      `strata agent: ${bad}:1: resolver: expected HOST:PORT, not a URL, got "http://b:2"`,
      `strata agent: ${bad}:2: unknown key "mounts" (did you mean mount?)`,
      `strata agent: ${bad}:3: mount: the mountpoint in "l0:relative" must be an absolute path`,
      `strata agent: ${bad}:3: mount: layer name "bad name" is not valid: use 1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit`,
      `strata agent: ${bad}:4: prefetch-entries: expected a non-negative integer, got -5`,
    ]);
  });
});

describe('strata agent start-up', () => {
  test('a bad --resolver address: one line, exit 2', () => {
    for (const [addr, expected] of [
      ['garbage', /^strata agent: --resolver: expected HOST:PORT \(e\.g\. 127\.0\.0\.1:7400\), got "garbage"\n$/],
      ['http://x:1', /^strata agent: --resolver: expected HOST:PORT, not a URL, got "http:\/\/x:1"\n$/],
      ['127.0.0.1:99999', /^strata agent: --resolver: port 99999 is out of range \(1-65535\) in "127\.0\.0\.1:99999"\n$/],
    ] as const) {
      const r = strata(['agent', '--resolver', addr, '--socket', path.join(dir, 'bad/agent.sock')]);
      assert.equal(r.status, 2, addr);
      assert.match(r.stderr, expected);
    }
    const env = strata(['agent', '--socket', path.join(dir, 'bad/agent.sock')], { STRATA_RESOLVER: '127.0.0.1:7400,garbage' });
    assert.equal(env.status, 2);
    assert.match(env.stderr, /^strata agent: \$STRATA_RESOLVER: expected HOST:PORT .*"garbage"\n$/);
    assert.equal(fs.existsSync(path.join(dir, 'bad')), false, 'nothing was started');
  });

  test('a resolver that does not answer: agent.ready says so, one warning line, the agent keeps running', async () => {
    const port = await freePort();
    const socket = path.join(dir, 'down/agent.sock');
    const a = await startAgent(['--resolver', `127.0.0.1:${port}`, '--socket', socket, ...DEADLINE]);
    assert.equal(a.ready.resolverReachable, false);
    assert.deepEqual(a.ready.unreachable, [`127.0.0.1:${port}`]);
    assert.notEqual(a.ready.msg, 'agent ready');
    assert.deepEqual(nonJson(a.lines), [`strata agent: warning: resolver 127.0.0.1:${port} does not answer (still trying)`]);
    const mounts = strata(['mounts', '--json', '--socket', socket]);
    assert.equal(mounts.status, 0, mounts.stderr);
    assert.equal(a.child.exitCode, null);
    await a.stop();
  });

  test('one of two resolvers away: ready, with the one that does not answer named', async () => {
    const port = await freePort();
    const a = await startAgent(['--resolver', `${resolver.address},127.0.0.1:${port}`, '--socket', path.join(dir, 'half/agent.sock'), ...DEADLINE]);
    assert.equal(a.ready.resolverReachable, true);
    assert.deepEqual(a.ready.unreachable, [`127.0.0.1:${port}`]);
    assert.deepEqual(nonJson(a.lines), [`strata agent: warning: resolver 127.0.0.1:${port} does not answer (still trying)`]);
    await a.stop();
  });

  test('a --mount waits for its resolver and mounts once it answers', { skip: canMountFuse() ? false : 'needs root and /dev/fuse' }, async () => {
    const port = await freePort();
    const mnt = path.join(dir, 'late-mount');
    fs.mkdirSync(mnt, { recursive: true });
    let late: ResolverProcess | undefined;
    try {
      const a = await startAgent(['--resolver', `127.0.0.1:${port}`, '--socket', path.join(dir, 'late/agent.sock'), '--mount', `l0:${mnt}`, ...DEADLINE]);
      assert.equal(a.ready.resolverReachable, false);
      assert.equal(a.ready.mounts, 0);
      assert.equal(a.ready.pendingMounts, 1);
      assert.deepEqual(nonJson(a.lines), [`strata agent: warning: resolver 127.0.0.1:${port} does not answer (still trying); 1 --mount waits for it`]);
      late = await startResolver({ store: fx.store, port });
      const mounted = await a.event('agent.mounted');
      assert.equal(mounted.mountpoint, mnt);
      assert.equal(fs.readFileSync(path.join(mnt, 'hello'), 'utf8'), 'hello\n');
      await a.stop();
    } finally {
      forceUnmount(mnt);
      await late?.stop();
    }
  });
});
