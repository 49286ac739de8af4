import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { canMountFuse } from '@strata/harness';
import type { NsProcess } from '../fleet/ns-process';
import { CertDir } from '../support/certs';
import { HostsNetns, hostsNetnsUnsupported } from '../support/hosts-netns';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { within } from '../support/bounded';

/**
 * A resolver address that is a host name with several addresses (a
 * Kubernetes headless Service: one record per resolver pod) stands for all
 * of them: the CLI asks each, an agent opens a Session on each and deals
 * its reads over them, a resolver that stops leaves the others serving,
 * and the name is looked up again so an address that comes or goes is
 * followed. Real processes in a network namespace of their own, the name
 * in a hosts file the clients see as /etc/hosts (a private mount
 * namespace each); the resolvers' own metrics say who served what.
 */

const NAME = 'resolvers.strata.test';
const PORT = 7400;
const unsupported = hostsNetnsUnsupported();
const pinned = (ip: string, port = PORT): string => `${NAME} (${ip}:${port})`;

interface VersionJson {
  resolvers: { address: string; version?: string; error?: string }[];
}

/** Session requests a resolver served (every Session.* method's latency count, summed) and its open Session streams, from its /metrics. */
function sessionStats(net: HostsNetns, ip: string): { requests: number; sessions: number } {
  const text = net.httpGet(`http://${ip}:9464/metrics`);
  let requests = 0;
  for (const m of text.matchAll(/^strata_resolver_request_duration\w*_count\{[^}]*method="Session\.\w+"[^}]*\} (\d+)$/gm)) requests += Number(m[1]);
  const sessions = Number(/^strata_resolver_sessions(?:\{[^}]*\})? (\d+)$/m.exec(text)?.[1] ?? 0);
  return { requests, sessions };
}

async function until<T>(what: string, fn: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const FILES = 24;
const content = (dir: string, i: number): string => `${dir}/f${String(i).padStart(2, '0')} ${'x'.repeat(i * 37)}\n`;
const DIRS = ['d1', 'd2', 'd3', 'd4'];

async function store(): Promise<StoreFixture> {
  return makeStore([
    {
      entries: [
        { type: 'file', path: '/a', content: 'a\n' },
        ...DIRS.flatMap((d) => [
          { type: 'dir' as const, path: `/${d}` },
          ...Array.from({ length: FILES }, (_, i) => ({ type: 'file' as const, path: `/${d}/f${String(i).padStart(2, '0')}`, content: content(d, i) })),
        ]),
      ],
    },
  ]);
}

function resolverAt(net: HostsNetns, fx: StoreFixture, ip: string, extra: string[] = [], port = PORT): NsProcess {
  return net.service(`resolver ${ip}`, 'resolver', ['--store', fx.store, '--listen', `${ip}:${port}`, '--metrics-listen', `${ip}:9464`, ...extra], { hosts: false });
}

describe('a resolver name with several addresses: the agent and the CLI spread over every one', { skip: unsupported ?? (canMountFuse() ? false : 'needs root and /dev/fuse') }, () => {
  let net: HostsNetns;
  let fx: StoreFixture;
  const resolvers = new Map<string, NsProcess>();
  let agent: NsProcess | undefined;
  let work: string;
  let mnt: string;
  let socket: string;

  /** Every file of a directory, read through the agent's mount (it lives in the agent's mount namespace). */
  function readThroughAgent(dir: string): string {
    const r = spawnSync('nsenter', ['-t', String(agent!.pid), '-m', '--', 'sh', '-c', 'for f in "$0"/*; do cat "$f" || exit 1; done', path.join(mnt, dir)], {
      encoding: 'utf8',
      timeout: 30_000,
      killSignal: 'SIGKILL',
    });
    assert.equal(r.status, 0, `reading ${dir} through the mount: ${r.stderr}${r.error?.message ?? ''}`);
    return r.stdout;
  }
  const expected = (dir: string): string => Array.from({ length: FILES }, (_, i) => content(dir, i)).join('');

  before(async () => {
    net = new HostsNetns();
    net.setHosts({ [NAME]: ['127.0.0.2', '127.0.0.3'] });
    fx = await store();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-headless-'));
    mnt = path.join(work, 'mnt');
    socket = path.join(work, 'agent.sock');
    fs.mkdirSync(mnt);
    for (const ip of ['127.0.0.2', '127.0.0.3']) resolvers.set(ip, resolverAt(net, fx, ip));
    await Promise.all([...resolvers.values()].map((r) => r.waitForEvent('resolver.listening', 20_000)));
  });

  after(async () => {
    await Promise.all([agent, ...resolvers.values()].map((p) => p && within('a process to stop', p.stop('SIGTERM', 10_000), 20_000).catch(() => undefined)));
    const problems = net?.destroy() ?? [];
    fx?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
    assert.deepEqual(problems, []);
  });

  test('the CLI given only the name asks every address, each listed as the name and the address it reached', () => {
    const r = net.strata(['version', '--json', '--resolver', `${NAME}:${PORT}`]);
    assert.equal(r.status, 0, r.stderr);
    const v = JSON.parse(r.stdout) as VersionJson;
    assert.deepEqual(v.resolvers.map((x) => x.address), [pinned('127.0.0.2'), pinned('127.0.0.3')]);
    for (const x of v.resolvers) {
      assert.equal(x.error, undefined);
      assert.match(x.version ?? '', /^\d+\.\d+\.\d+/);
    }
    assert.equal(r.stderr, '', 'the first expansion is not a change: nothing on stderr');
    const text = net.strata(['version', '--resolver', `${NAME}:${PORT}`]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^resolver resolvers\.strata\.test \(127\.0\.0\.2:7400\) +\d+\.\d+\.\d+/m);
    assert.match(text.stdout, /^resolver resolvers\.strata\.test \(127\.0\.0\.3:7400\) +\d+\.\d+\.\d+/m);
    const cat = net.strata(['cat', 'l0', '/a', '--resolver', `${NAME}:${PORT}`]);
    assert.equal(cat.status, 0, cat.stderr);
    assert.equal(cat.stdout, 'a\n');
    // A name nobody knows: one line naming it.
    const nowhere = net.strata(['version', '--resolver', 'nowhere.strata.test:7400', '--timeout', '5']);
    assert.notEqual(nowhere.status, 0);
    // `strata version` says each resolver's failure on its line, the summary on stderr.
    assert.match(nowhere.stdout + nowhere.stderr, /cannot resolve host nowhere\.strata\.test/);
  });

  test('an agent given only the name opens a Session on each resolver and deals its reads over both', async (t) => {
    agent = net.service(
      'agent',
      'agent',
      ['--resolver', `${NAME}:${PORT}`, '--socket', socket, '--mount', `l0:${mnt}`, '--prefetch-entries', '0', '--data-cache-mb', '0', '--data-cache-dir', path.join(work, 'cache'), '--deadline-ms', '3000'],
      { hosts: true, env: { STRATA_RESOLVER_REFRESH_MS: '300' } },
    );
    await agent.waitForEvent('agent.ready', 30_000);
    const before = { a: sessionStats(net, '127.0.0.2'), b: sessionStats(net, '127.0.0.3') };
    assert.equal(readThroughAgent('d1'), expected('d1'));
    const a = sessionStats(net, '127.0.0.2');
    const b = sessionStats(net, '127.0.0.3');
    assert.ok(a.sessions >= 1 && b.sessions >= 1, `a Session open on each resolver: ${a.sessions} and ${b.sessions}`);
    const servedA = a.requests - before.a.requests;
    const servedB = b.requests - before.b.requests;
    t.diagnostic(`d1 read through the mount: ${servedA} Session requests served by 127.0.0.2, ${servedB} by 127.0.0.3; sessions open ${a.sessions} and ${b.sessions}`);
    assert.ok(servedA > 0 && servedB > 0, `both resolvers served the reads of d1: ${servedA} and ${servedB} Session requests`);
    // Dealt round robin over two streams: neither takes (nearly) all of it.
    assert.ok(Math.min(servedA, servedB) * 4 >= Math.max(servedA, servedB), `dealt evenly: ${servedA} and ${servedB}`);

    const s = net.strata(['status', '--json', '--socket', socket]);
    assert.equal(s.status, 0, `${s.stdout}${s.stderr}`);
    const status = JSON.parse(s.stdout) as { ok: boolean; resolvers: { address: string; error?: string }[]; agent: { resolvers?: { address: string; state: string }[] } };
    assert.equal(status.ok, true);
    const states = new Map((status.agent.resolvers ?? []).map((x) => [x.address, x.state]));
    // The agent lists each of the name's resolvers as the client does ("name (ip:port)"), and only those (not the name itself).
    assert.deepEqual([...states], [
      [pinned('127.0.0.2'), 'connected'],
      [pinned('127.0.0.3'), 'connected'],
    ]);
    assert.deepEqual(status.resolvers.map((x) => [x.address, x.error]), [
      [pinned('127.0.0.2'), undefined],
      [pinned('127.0.0.3'), undefined],
    ]);
  });

  test('one resolver stopped: every read goes on, served by the other', async (t) => {
    assert.ok(agent, 'the agent of the test before');
    const b0 = sessionStats(net, '127.0.0.3');
    const stopped = await within('the resolver at 127.0.0.2 to stop', resolvers.get('127.0.0.2')!.stop('SIGTERM', 10_000), 20_000);
    assert.equal(stopped.code, 0);
    resolvers.delete('127.0.0.2');
    assert.equal(readThroughAgent('d2'), expected('d2'));
    const b1 = sessionStats(net, '127.0.0.3');
    t.diagnostic(`after 127.0.0.2 stopped, d2: ${b1.requests - b0.requests} Session requests served by 127.0.0.3, ${b1.sessions} sessions open on it`);
    assert.ok(b1.requests - b0.requests >= FILES, `the resolver left served d2: ${b1.requests - b0.requests} Session requests`);
    assert.ok(b1.sessions >= 2, `both of the agent's streams are on it now: ${b1.sessions}`);
  });

  test('the name looked up again: an address added is used, one removed is dropped, one JSON line for the change', async (t) => {
    assert.ok(agent, 'the agent of the tests before');
    const c = resolverAt(net, fx, '127.0.0.4');
    resolvers.set('127.0.0.4', c);
    await c.waitForEvent('resolver.listening', 20_000);
    net.setHosts({ [NAME]: ['127.0.0.3', '127.0.0.4'] });
    const line = await agent.waitFor('client.resolvers.changed', (l) => l.event === 'client.resolvers.changed', 20_000);
    assert.deepEqual(line.added, [pinned('127.0.0.4')]);
    assert.deepEqual(line.removed, [pinned('127.0.0.2')]);
    assert.deepEqual(line.addresses, [pinned('127.0.0.3'), pinned('127.0.0.4')]);
    assert.deepEqual(line.given, [`${NAME}:${PORT}`]);
    // A new Session on the added address (opened with the first request dealt to it).
    assert.equal(readThroughAgent('d3'), expected('d3'));
    const c1 = await until('a Session request served by 127.0.0.4', () => {
      const st = sessionStats(net, '127.0.0.4');
      return st.requests > 0 ? st : undefined;
    });
    assert.ok(c1.sessions >= 1);
    t.diagnostic(`after the hosts file changed: ${c1.requests} Session requests served by 127.0.0.4 (${c1.sessions} sessions)`);
    // More lookups came and went (every 300 ms) with the same answer: no more lines.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(agent.events('client.resolvers.changed').length, 1);
    assert.equal(readThroughAgent('d4'), expected('d4'));
  });
});

describe('a resolver name with several addresses under TLS: each reached by its IP, verified as the name', { skip: unsupported ?? false }, () => {
  const TLS_PORT = 7401;
  let net: HostsNetns;
  let fx: StoreFixture;
  let certs: CertDir;
  const resolvers: NsProcess[] = [];

  before(async () => {
    certs = new CertDir();
    certs.makeCa('ca');
    // The name only: no IP in the certificate, so reaching an address as itself fails verification.
    certs.makeLeaf('server', 'ca', NAME, 1001, `DNS:${NAME}`);
    net = new HostsNetns();
    net.setHosts({ [NAME]: ['127.0.0.2', '127.0.0.3'] });
    fx = await store();
    for (const ip of ['127.0.0.2', '127.0.0.3']) {
      resolvers.push(resolverAt(net, fx, ip, ['--tls-cert', certs.file('server.crt'), '--tls-key', certs.file('server.key')], TLS_PORT));
    }
    await Promise.all(resolvers.map((r) => r.waitForEvent('resolver.listening', 20_000)));
  });

  after(async () => {
    await Promise.all(resolvers.map((p) => within('a process to stop', p.stop('SIGTERM', 10_000), 20_000).catch(() => undefined)));
    const problems = net?.destroy() ?? [];
    fx?.cleanup();
    certs?.remove();
    assert.deepEqual(problems, []);
  });

  test('both addresses answer over TLS as the name; an address given as itself is refused by the certificate; a pinned one works', () => {
    const tls = ['--tls-ca', certs.file('ca.crt')];
    const r = net.strata(['version', '--json', '--resolver', `${NAME}:${TLS_PORT}`, ...tls]);
    assert.equal(r.status, 0, r.stderr);
    const v = JSON.parse(r.stdout) as VersionJson;
    assert.deepEqual(
      v.resolvers.map((x) => [x.address, x.error]),
      [
        [pinned('127.0.0.2', TLS_PORT), undefined],
        [pinned('127.0.0.3', TLS_PORT), undefined],
      ],
    );
    const cat = net.strata(['cat', 'l0', '/d1/f01', '--resolver', `${NAME}:${TLS_PORT}`, ...tls]);
    assert.equal(cat.status, 0, cat.stderr);
    assert.equal(cat.stdout, content('d1', 1));
    // The truth the pinning rests on: the certificate is for the name, not for the address.
    const byIp = net.strata(['version', '--resolver', `127.0.0.2:${TLS_PORT}`, '--timeout', '5', ...tls]);
    assert.notEqual(byIp.status, 0);
    assert.match(byIp.stdout + byIp.stderr, /certificate is not for this address/);
    const one = net.strata(['version', '--json', '--resolver', pinned('127.0.0.3', TLS_PORT), ...tls]);
    assert.equal(one.status, 0, one.stderr);
    assert.deepEqual((JSON.parse(one.stdout) as VersionJson).resolvers.map((x) => [x.address, x.error]), [[pinned('127.0.0.3', TLS_PORT), undefined]]);
  });

  test('an agent given the name over TLS: a Session on each address, verified as the name, reads dealt over both', { skip: canMountFuse() ? false : 'needs root and /dev/fuse' }, async (t) => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-headless-tls-'));
    const mnt = path.join(work, 'mnt');
    fs.mkdirSync(mnt);
    const agent = net.service(
      'agent tls',
      'agent',
      ['--resolver', `${NAME}:${TLS_PORT}`, '--tls-ca', certs.file('ca.crt'), '--socket', path.join(work, 'agent.sock'), '--mount', `l0:${mnt}`, '--prefetch-entries', '0', '--data-cache-mb', '0', '--data-cache-dir', path.join(work, 'cache')],
      { hosts: true },
    );
    try {
      await agent.waitForEvent('agent.ready', 30_000);
      const before = [sessionStats(net, '127.0.0.2').requests, sessionStats(net, '127.0.0.3').requests];
      const r = spawnSync('nsenter', ['-t', String(agent.pid), '-m', '--', 'sh', '-c', 'for f in "$0"/*; do cat "$f" || exit 1; done', path.join(mnt, 'd2')], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, Array.from({ length: FILES }, (_, i) => content('d2', i)).join(''));
      const served = [sessionStats(net, '127.0.0.2').requests - before[0], sessionStats(net, '127.0.0.3').requests - before[1]];
      t.diagnostic(`over TLS, d2 read through the mount: ${served[0]} Session requests served by 127.0.0.2, ${served[1]} by 127.0.0.3`);
      assert.ok(served[0] > 0 && served[1] > 0, `both served: ${served.join(' and ')}`);
      assert.equal(agent.events('agent.resolver.unreachable').length, 0, 'no handshake refused');
    } finally {
      await within('the agent to stop', agent.stop('SIGTERM', 10_000), 20_000).catch(() => undefined);
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('a resolver name with several IPv6 addresses: each dialled in brackets, shown as the name', { skip: unsupported ?? false }, () => {
  const NAME6 = 'six.strata.test';
  const PORT6 = 7402;
  let net: HostsNetns;
  let fx: StoreFixture;
  const resolvers: NsProcess[] = [];

  before(async () => {
    net = new HostsNetns();
    for (const a of ['fd00::2', 'fd00::3']) net.addAddress(`${a}/128`);
    net.setHosts({ [NAME6]: ['fd00::2', 'fd00::3'] });
    fx = await store();
    for (const ip of ['fd00::2', 'fd00::3']) {
      // Not a loopback address: plaintext has to be asked for.
      resolvers.push(net.service(`resolver ${ip}`, 'resolver', ['--store', fx.store, '--listen', `[${ip}]:${PORT6}`, '--plaintext'], { hosts: false }));
    }
    await Promise.all(resolvers.map((r) => r.waitForEvent('resolver.listening', 20_000)));
  });

  after(async () => {
    await Promise.all(resolvers.map((p) => within('a process to stop', p.stop('SIGTERM', 10_000), 20_000).catch(() => undefined)));
    const problems = net?.destroy() ?? [];
    fx?.cleanup();
    assert.deepEqual(problems, []);
  });

  test('both answer, each listed as "name ([v6]:port)"', () => {
    const r = net.strata(['version', '--json', '--resolver', `${NAME6}:${PORT6}`]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      (JSON.parse(r.stdout) as VersionJson).resolvers.map((x) => [x.address, x.error]),
      [
        [`${NAME6} ([fd00::2]:${PORT6})`, undefined],
        [`${NAME6} ([fd00::3]:${PORT6})`, undefined],
      ],
    );
  });
});
