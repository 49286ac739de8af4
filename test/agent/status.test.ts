import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { canMountFuse, forceUnmount, freePort, startAgent, startResolver, strata, waitFor, type AgentProcess, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { exitWithin } from '../support/bounded';

/**
 * The operator's view of a host through real processes: `strata status`
 * and `strata mounts` while everything serves and once the resolver is
 * gone (a mount whose reads fail is never shown as serving), the agent's
 * readiness to systemd (sd_notify), a dead mount unmounted with no agent,
 * errors as JSON, walk as NDJSON and shell completion.
 */

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';
const python = spawnSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).stdout.trim();

interface Mounted {
  mountpoint: string;
  state?: string;
  health?: { consecutiveFailures: number; lastError?: { errno: string } };
}

interface StatusJson {
  ok: boolean;
  problems: string[];
  agent: { up: boolean; pid?: number; version?: string; resolvers?: { address: string; state: string }[]; mounts?: Mounted[]; dataCache?: { maxBytes: number }; tls?: { mode: string } };
  resolvers: { address: string; version?: string; latencyMs?: number; error?: string; agentState?: string }[];
  client: { version: string; tls: { mode: string } };
}

/** A unix datagram socket standing in for systemd's $NOTIFY_SOCKET (Node has none): python prints each datagram as a JSON line. */
function notifyListener(socketPath: string): { child: ChildProcess; messages: () => string[]; bound: Promise<string> } {
  const script = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps('bound'), flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;
  const child = spawn(python, ['-c', script, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const messages = (): string[] =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string);
  return { child, messages, bound: waitFor('the notify socket to be bound', () => (messages()[0] === 'bound' ? 'bound' : undefined), 10_000) };
}

describe('strata status, mounts, umount, errors and completion against real processes', { skip }, () => {
  let fx: StoreFixture;
  let resolver: ResolverProcess | undefined;
  let agent: AgentProcess | undefined;
  let work: string;
  let socket: string;
  let mnt: string;
  let notify: ReturnType<typeof notifyListener> | undefined;
  let metricsPort: number;
  // A kept-alive connection the listener has just closed fails one fetch ("other side closed"): a second try opens a new one.
  const scrape = async (p: string): Promise<{ status: number; body: string }> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(`http://127.0.0.1:${metricsPort}${p}`, { signal: AbortSignal.timeout(10_000) });
        return { status: res.status, body: await res.text() };
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  };

  before(async () => {
    fx = await makeStore([
      {
        entries: [
          { type: 'file', path: '/a', content: 'a\n' },
          { type: 'dir', path: '/d' },
          ...Array.from({ length: 20 }, (_, i) => ({ type: 'file' as const, path: `/d/f${i}`, content: `${i}\n` })),
        ],
      },
    ]);
    resolver = await startResolver({ store: fx.store });
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-status-'));
    socket = path.join(work, 'agent.sock');
    mnt = path.join(work, 'mnt');
    fs.mkdirSync(mnt);
    const env: Record<string, string> = {};
    if (python) {
      notify = notifyListener(path.join(work, 'notify.sock'));
      await notify.bound;
      env.NOTIFY_SOCKET = path.join(work, 'notify.sock');
    }
    metricsPort = await freePort();
    agent = await startAgent({
      resolver: resolver.address,
      socket,
      mounts: [`l0:${mnt}`],
      env,
      extra: ['--prefetch-entries', '0', '--data-cache-dir', path.join(work, 'cache'), '--deadline-ms', '1000', '--metrics-port', String(metricsPort)],
    });
  });

  after(async () => {
    forceUnmount(mnt);
    await agent?.stop();
    await resolver?.stop();
    notify?.child.kill('SIGKILL');
    fx?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('sd_notify: READY=1 from the agent itself once its --mount is in place', { skip: python ? false : 'needs python3 (a unix datagram socket)' }, async () => {
    const ready = await waitFor('READY=1', () => notify!.messages().find((m) => m.startsWith('READY=1')), 10_000);
    assert.match(ready, new RegExp(`^READY=1\\nMAINPID=${agent!.child.pid}\\nSTATUS=serving 1 mount$`));
    // Ready came after the mount: the agent logged agent.ready with it mounted.
    assert.equal(agent!.logs.find((l) => l.event === 'agent.ready')?.mounts, 1);
  });

  test('status: the agent, the resolver with version and round trip, the mount serving; exit 0; text on one screen', () => {
    assert.equal(fs.readFileSync(path.join(mnt, 'a'), 'utf8'), 'a\n');
    const r = strata(['status', '--json', '--socket', socket]);
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as StatusJson;
    assert.equal(s.ok, true, s.problems.join('; '));
    assert.equal(s.agent.up, true);
    assert.equal(s.agent.pid, agent!.child.pid);
    assert.match(s.agent.version ?? '', /^\d+\.\d+\.\d+/);
    assert.equal(s.agent.tls?.mode, 'off');
    assert.deepEqual(s.agent.resolvers?.map((x) => [x.address, x.state]), [[resolver!.address, 'connected']]);
    assert.equal(s.resolvers.length, 1);
    assert.equal(s.resolvers[0].address, resolver!.address, 'the resolvers the agent uses, without --resolver');
    assert.match(s.resolvers[0].version ?? '', /^\d+\.\d+\.\d+/);
    assert.ok((s.resolvers[0].latencyMs ?? -1) >= 0);
    assert.equal(s.resolvers[0].agentState, 'connected');
    assert.deepEqual(s.agent.mounts?.map((m) => [m.mountpoint, m.state]), [[mnt, 'serving']]);
    const text = strata(['doctor', '--socket', socket]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^agent +up, pid \d+/m);
    assert.match(text.stdout, new RegExp(`^resolver +${resolver!.address} +\\d+\\.\\d+\\.\\d+.* ms +cache in-process +agent: connected$`, 'm'));
    assert.match(text.stdout, new RegExp(`^mount +${mnt} +l0 \\(layer \\d+\\) +serving$`, 'm'));
    assert.match(text.stdout, /^status +ok$/m);
    assert.ok(text.stdout.split('\n').length < 25, 'one screen');
  });

  test('metrics: FUSE errors by op and errno, mounts by state, per-resolver connection state, data-cache bytes and files; /healthz serving', async () => {
    assert.throws(() => fs.readFileSync(path.join(mnt, 'no-such-file')), /ENOENT/);
    // A sealed file read whole lands in the data cache (filled in the background).
    fs.readFileSync(path.join(mnt, 'a'));
    const m = await waitFor(
      'the metrics to show the ENOENT and a cached file',
      async () => {
        const body = (await scrape('/metrics')).body;
        return /^strata_fuse_errors_total\{[^}]*errno="ENOENT"[^}]*\} [1-9]/m.test(body) && /^strata_agent_data_cache_files(_total)?(\{[^}]*\})? [1-9]/m.test(body) ? body : undefined;
      },
      15_000,
    );
    assert.match(m, /^strata_fuse_errors_total\{[^}]*op="lookup"/m);
    assert.match(m, new RegExp(`^strata_agent_resolver_connection\\{[^}]*resolver="${resolver!.address}"[^}]*state="connected"[^}]*\\} 1$`, 'm'));
    assert.match(m, new RegExp(`^strata_agent_resolver_connection\\{[^}]*resolver="${resolver!.address}"[^}]*state="unreachable"[^}]*\\} 0$`, 'm'));
    assert.match(m, /^strata_agent_mounts_by_state\{[^}]*state="serving"[^}]*\} 1$/m);
    assert.match(m, /^strata_agent_mounts_by_state\{[^}]*state="degraded"[^}]*\} 0$/m);
    assert.match(m, /^strata_agent_data_cache_bytes(_bytes)?(\{[^}]*\})? [1-9]/m);
    const health = await scrape('/healthz');
    assert.equal(health.status, 200, health.body);
  });

  test('walk --json streams NDJSON: one object a line, every path', () => {
    const r = strata(['walk', 'l0', '--json', '--resolver', resolver!.address]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    const paths = lines.map((l) => (JSON.parse(l) as { path: string }).path);
    assert.equal(paths.length, 23);
    assert.ok(paths.includes('/d/f19') && paths.includes('/a'));
  });

  test('errors honour --json: one JSON object on stderr, bad arguments included; nothing on stdout', () => {
    const missing = strata(['mount', 'no-such-layer', path.join(work, 'nowhere'), '--socket', socket, '--json']);
    assert.equal(missing.status, 1);
    assert.equal(missing.stdout, '');
    const e = JSON.parse(missing.stderr) as { error: { message: string; errno: string; kind: string } };
    assert.equal(e.error.errno, 'ENOENT');
    assert.match(e.error.message, /mountpoint .*nowhere does not exist/);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    const usage = strata(['ls', '--no-such-flag', '--json']);
    assert.equal(usage.status, 1);
    assert.deepEqual((JSON.parse(usage.stderr) as { error: { kind: string; errno: string } }).error.kind, 'usage');
    const plain = strata(['ls', '--no-such-flag']);
    assert.match(plain.stderr, /^strata: unknown option/);
  });

  test('completion: bash and zsh scripts; bash completes commands, subcommands and options', () => {
    const bash = strata(['completion', 'bash']);
    assert.equal(bash.status, 0, bash.stderr);
    const file = path.join(work, 'completion.bash');
    fs.writeFileSync(file, bash.stdout);
    const complete = (words: string[]): string[] => {
      const script = `source ${JSON.stringify(file)}; COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}; _strata; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean).sort();
    };
    assert.deepEqual(complete(['strata', 'sta']), ['stat', 'status']);
    assert.ok(complete(['strata', 'layer', '']).includes('create'));
    assert.ok(complete(['strata', 'layer', 'create', '--so']).includes('--source'));
    assert.ok(complete(['strata', 'mount', 'l0', '--']).includes('--socket'));
    const zsh = strata(['completion', 'zsh']);
    assert.equal(zsh.status, 0);
    assert.match(zsh.stdout, /^#compdef strata/);
    assert.equal(strata(['completion', 'fish']).status, 1);
  });

  test('the resolver gone: the mount is not shown as serving, status says DEGRADED and exits 1', async () => {
    const address = resolver!.address;
    await resolver!.stop();
    resolver = undefined;
    // Reads the mount has not cached fail now; each tells the mount's health.
    for (let i = 0; i < 20; i++) {
      try {
        fs.readFileSync(path.join(mnt, 'd', `f${i}`));
      } catch {
        // EIO (or a timeout) is what is being shown.
      }
    }
    const m = await waitFor(
      'the mount to leave the serving state',
      () => {
        const r = strata(['mounts', '--json', '--socket', socket]);
        const mine = (JSON.parse(r.stdout) as { mounts: Mounted[] }).mounts[0];
        return mine && mine.state !== 'serving' ? mine : undefined;
      },
      20_000,
    );
    assert.ok(m.state === 'resolvers-away' || m.state === 'degraded', m.state);
    const table = strata(['mounts', '--socket', socket]);
    assert.match(table.stdout, /STATE/);
    assert.doesNotMatch(table.stdout.split('\n')[1] ?? '', / serving /);
    const s = strata(['status', '--json', '--socket', socket]);
    assert.equal(s.status, 1);
    const report = JSON.parse(s.stdout) as StatusJson;
    assert.equal(report.ok, false);
    assert.ok(report.resolvers[0].error, 'the resolver does not answer');
    assert.ok(report.problems.some((p) => p.startsWith(`mount ${mnt} is`)), report.problems.join('; '));
    const text = strata(['status', '--socket', socket]);
    assert.equal(text.status, 1);
    assert.match(text.stdout, /^status +DEGRADED: /m);
    const health = await scrape('/healthz');
    assert.equal(health.status, 503, health.body);
    const gone = new RegExp(`^strata_agent_resolver_connection\\{[^}]*resolver="${address}"[^}]*state="connected"[^}]*\\} 0$`, 'm');
    await waitFor('the resolver no longer connected in the metrics', async () => gone.test((await scrape('/metrics')).body) || undefined, 10_000);
  });

  test('an agent whose resolver never answered: unreachable in status and metrics, /healthz 503', async () => {
    const port = await freePort();
    const mport = await freePort();
    const lonely = await startAgent({ resolver: `127.0.0.1:${port}`, extra: ['--metrics-port', String(mport)] });
    try {
      const s = JSON.parse(strata(['status', '--json', '--socket', lonely.socket]).stdout) as StatusJson;
      assert.deepEqual(s.agent.resolvers?.map((r) => r.state), ['unreachable']);
      assert.equal(s.ok, false);
      const health = await fetch(`http://127.0.0.1:${mport}/healthz`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(health.status, 503);
      assert.match(await health.text(), /every resolver is unreachable/);
    } finally {
      await lonely.stop();
    }
  });

  test('umount of a dead mount with no agent: detached, not stranded', async () => {
    agent!.child.kill('SIGKILL');
    await exitWithin(agent!.child, 'the agent to die of SIGKILL', 10_000);
    agent = undefined;
    // Opening reaches the (dead) server; a stat could be answered from the kernel's attribute cache.
    assert.throws(() => fs.readdirSync(mnt), /ENOTCONN|ECONNABORTED/);
    const r = strata(['umount', mnt, '--socket', socket]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /no agent was running: detached the dead mount/);
    assert.ok(fs.statSync(mnt).isDirectory());
    assert.ok(!fs.readFileSync('/proc/self/mounts', 'utf8').includes(` ${mnt} `));
    // Not a strata mount, no agent: the plain "no agent" error.
    const none = strata(['umount', work, '--socket', socket]);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no agent is listening/);
    const down = strata(['status', '--socket', socket, '--resolver', '127.0.0.1:1']);
    assert.equal(down.status, 1);
    assert.match(down.stdout, /^agent +DOWN: no agent is listening/m);
  });
});
