import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { StrataClient, type ClientTlsFiles } from '@strata/client';
import { STRATA_BIN, canMountFuse, forceUnmount, freePort, startAgent, startResolver, strata, waitFor, type ResolverProcess } from '@strata/harness';
import { CertDir } from '../support/certs';
import { makeStore, type StoreFixture } from '../support/store-fixture';

/**
 * TLS on the resolver's listener and mutual TLS for its callers, with
 * certificates made here by openssl: a CA, a server certificate for
 * 127.0.0.1 (and a second one with another serial for rotation), a client
 * with a SPIFFE URI SAN, a client with only a CN, and a client of another CA.
 */

let dir: string;
let fx: StoreFixture;
let resolver: ResolverProcess;

let certs: CertDir;
const makeCa = (name: string): void => certs.makeCa(name);
const makeLeaf = (name: string, ca: string, cn: string, serial: number, san?: string): void => certs.makeLeaf(name, ca, cn, serial, san);

/** Mutual TLS turns access control on: the identities of these tests administer everything. */
const ADMINS = ['spiffe://strata.test/agent', 'examiner', 'spiffe://strata.test/agent-rotated'].flatMap((a) => ['--admin', a]);

const file = (name: string): string => path.join(dir, name);

/** The resolver reads these two; the rotation test copies other certificates over them. */
function installServerCert(name: string): void {
  fs.copyFileSync(file(`${name}.crt`), file('live.crt'));
  fs.copyFileSync(file(`${name}.key`), file('live.key'));
}

/** `strata` with TLS flags for a client `who` (a name of certificate files, or undefined: none). */
function tlsArgs(ca: string | undefined, who: string | undefined): string[] {
  return [...(ca ? ['--tls-ca', file(`${ca}.crt`)] : []), ...(who ? ['--tls-cert', file(`${who}.crt`), '--tls-key', file(`${who}.key`)] : [])];
}

function run(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  return strata(['--resolver', resolver.address, '--timeout', '5', ...args], env);
}

/** Fails with exactly one line on stderr; returns it. */
function oneLineFailure(r: { status: number | null; stdout: string; stderr: string }): string {
  assert.equal(r.status, 1, `expected a failure, got ${r.status}: ${r.stdout}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
  return lines[0];
}

/** The serial of the certificate a new TLS connection to the resolver is shown. */
function servedSerial(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: '127.0.0.1', port: resolver.port, ca: fs.readFileSync(file('ca.crt')), cert: fs.readFileSync(file('agent.crt')), key: fs.readFileSync(file('agent.key')), ALPNProtocols: ['h2'] },
      () => {
        const serial = parseInt(socket.getPeerCertificate().serialNumber, 16);
        socket.end();
        resolve(serial);
      },
    );
    socket.on('error', reject);
  });
}

const clientTls = (who: string): ClientTlsFiles => ({ ca: file('ca.crt'), cert: file(`${who}.crt`), key: file(`${who}.key`) });

before(async () => {
  certs = new CertDir('strata-tls-');
  dir = certs.dir;
  makeCa('ca');
  makeCa('other');
  makeLeaf('server1', 'ca', 'resolver', 1001, 'IP:127.0.0.1');
  makeLeaf('server2', 'ca', 'resolver', 1002, 'IP:127.0.0.1');
  makeLeaf('agent', 'ca', 'agent-cn', 2001, 'URI:spiffe://strata.test/agent');
  makeLeaf('examiner', 'ca', 'examiner', 2002);
  makeLeaf('agent2', 'ca', 'agent-cn', 2003, 'URI:spiffe://strata.test/agent-rotated');
  makeLeaf('stranger', 'other', 'stranger', 3001, 'URI:spiffe://strata.test/agent');
  installServerCert('server1');
  fx = await makeStore([
    { entries: [{ type: 'file', path: '/etc/hostname', content: 'base\n' }, ...Array.from({ length: 8 }, (_, i) => ({ type: 'file' as const, path: `/data/f${i}`, content: `file ${i}\n` }))] },
  ]);
  resolver = await startResolver({ store: fx.store, extra: ['--tls-cert', file('live.crt'), '--tls-key', file('live.key'), '--tls-client-ca', file('ca.crt'), ...ADMINS] });
});

after(async () => {
  await resolver?.stop();
  fx?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('mutual TLS between the CLI and the resolver', () => {
  test('the resolver says it serves mutual TLS', () => {
    const ready = resolver.logs.find((l) => l.event === 'resolver.listening');
    assert.equal(ready?.tls, 'mutual');
  });

  test('a client with the CA and a certificate of that CA lists layers, stats and reads', () => {
    const list = run([...tlsArgs('ca', 'agent'), 'layer', 'list', '--json']);
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual((JSON.parse(list.stdout) as { layers: { name: string }[] }).layers.map((l) => l.name), ['l0']);
    const stat = run([...tlsArgs('ca', 'agent'), 'stat', 'l0', '/etc/hostname', '--json']);
    assert.equal(stat.status, 0, stat.stderr);
    assert.equal(Number((JSON.parse(stat.stdout) as { attr: { size: number | string } }).attr.size), 5);
    const cat = run([...tlsArgs('ca', 'agent'), 'cat', 'l0', '/etc/hostname']);
    assert.equal(cat.status, 0, cat.stderr);
    assert.equal(cat.stdout, 'base\n');
  });

  test('the files can come from $STRATA_TLS_CA, $STRATA_TLS_CERT and $STRATA_TLS_KEY', () => {
    const cat = run(['cat', 'l0', '/etc/hostname'], { STRATA_TLS_CA: file('ca.crt'), STRATA_TLS_CERT: file('examiner.crt'), STRATA_TLS_KEY: file('examiner.key') });
    assert.equal(cat.status, 0, cat.stderr);
    assert.equal(cat.stdout, 'base\n');
  });

  test("the caller's identity is its URI SAN (SPIFFE) when it has one, else its CN, in the resolver's log", async () => {
    // Two methods no other test calls, so each line is known to be this test's.
    assert.equal(run([...tlsArgs('ca', 'agent'), 'ls', 'l0', '/data']).status, 0);
    assert.equal(run([...tlsArgs('ca', 'examiner'), 'walk', 'l0', '/etc']).status, 0);
    const callersOf = (method: RegExp): string[] => resolver.logs.filter((l) => l.event === 'rpc.caller' && method.test(String(l.method))).map((l) => String(l.caller));
    await waitFor('both calls logged', () => (callersOf(/readDir/i).length > 0 && callersOf(/walk/i).length > 0) || undefined);
    assert.deepEqual([...new Set(callersOf(/readDir/i))], ['spiffe://strata.test/agent']);
    assert.deepEqual([...new Set(callersOf(/walk/i))], ['examiner']);
  });

  test('no client certificate: refused, one line', () => {
    const line = oneLineFailure(run([...tlsArgs('ca', undefined), 'layer', 'list']));
    assert.match(line, /^strata: TLS handshake with 127\.0\.0\.1:\d+ failed: the resolver requires a client certificate \(--tls-cert and --tls-key\)$/);
  });

  test('a client certificate from another CA: refused, one line', () => {
    const line = oneLineFailure(run([...tlsArgs('ca', 'stranger'), 'layer', 'list']));
    // In TLS 1.3 the server judges the client's certificate after the client has finished its
    // side of the handshake: the refusal reaches the client as the server's alert or, when the
    // server closes first, as a reset. Either way one line, and nothing was read.
    assert.match(line, /^strata: (TLS handshake with 127\.0\.0\.1:\d+ failed: |lost the connection to 127\.0\.0\.1:\d+ \(connection reset by peer\))/);
  });

  test('a client that does not know the CA of the resolver: one line naming the unknown CA', () => {
    const line = oneLineFailure(run([...tlsArgs('other', 'agent'), 'layer', 'list']));
    assert.match(line, /^strata: TLS handshake with 127\.0\.0\.1:\d+ failed: certificate signed by an unknown CA/);
  });

  test('a plaintext client (no --tls-ca) against the TLS resolver: one line that says to give --tls-ca', () => {
    const line = oneLineFailure(run(['layer', 'list']));
    assert.match(line, /^strata: 127\.0\.0\.1:\d+ closed the connection before gRPC started \(a TLS-only server: give --tls-ca; or not gRPC\)$/);
  });

  test('a TLS client against a plaintext resolver: one line saying the resolver does not speak TLS', async () => {
    // The store is one a mutual-TLS resolver serves: a plaintext one starts on it read-only alone (issue 23 item 1).
    const plain = await startResolver({ store: fx.store, extra: ['--unenforced-read-only'] });
    try {
      const r = strata(['--resolver', plain.address, '--timeout', '5', ...tlsArgs('ca', 'agent'), 'layer', 'list']);
      assert.match(oneLineFailure(r), /^strata: TLS handshake with 127\.0\.0\.1:\d+ failed: the resolver does not speak TLS/);
    } finally {
      await plain.stop();
    }
  });

  test('TLS without --tls-client-ca: any client that trusts the resolver reads, as anonymous', async () => {
    const server = await startResolver({ store: fx.store, extra: ['--tls-cert', file('server1.crt'), '--tls-key', file('server1.key'), '--unenforced-read-only'] });
    try {
      assert.equal(server.logs.find((l) => l.event === 'resolver.listening')?.tls, 'on');
      const r = strata(['--resolver', server.address, '--timeout', '5', ...tlsArgs('ca', undefined), 'cat', 'l0', '/etc/hostname']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'base\n');
      const line = await waitFor('rpc.caller', () => server.logs.find((l) => l.event === 'rpc.caller'));
      assert.equal(line.caller, 'anonymous');
    } finally {
      await server.stop();
    }
  });

  test('a certificate file that does not exist: one line naming it', () => {
    const line = oneLineFailure(run(['--tls-ca', file('missing.crt'), 'layer', 'list']));
    assert.match(line, /missing\.crt/);
  });
});

describe('certificate rotation on SIGHUP', () => {
  test('new connections get the new certificate, an open Session stream keeps working, a bad file keeps the old one', async () => {
    installServerCert('server1');
    const events: string[] = [];
    const client = new StrataClient({ resolver: resolver.address, tls: clientTls('agent') });
    const session = client.session({ onEvent: (e) => events.push(e.type) });
    const stat = async (p: string): Promise<void> => {
      const answer = await session.request({ $case: 'stat', stat: { layer: { ref: { $case: 'name', name: 'l0' } }, path: Buffer.from(p) } });
      assert.equal(answer.$case, 'stat');
    };
    try {
      await stat('/etc/hostname');
      assert.equal(await servedSerial(), 1001);

      const reloads = resolver.logs.filter((l) => l.event === 'resolver.tls_reloaded').length;
      installServerCert('server2');
      resolver.child.kill('SIGHUP');
      await waitFor('resolver.tls_reloaded', () => resolver.logs.filter((l) => l.event === 'resolver.tls_reloaded').length > reloads || undefined);
      assert.equal(await servedSerial(), 1002);
      await stat('/data/f0');
      assert.deepEqual(events, ['connected'], 'the Session stream was not dropped');

      // A broken file: logged, and the resolver keeps its identity.
      fs.writeFileSync(file('live.crt'), 'not a certificate\n');
      resolver.child.kill('SIGHUP');
      const failed = await waitFor('resolver.tls_reload_failed', () => resolver.logs.find((l) => l.event === 'resolver.tls_reload_failed'));
      assert.match(String(failed.err), /live\.crt/);
      assert.equal(await servedSerial(), 1002);
      await stat('/data/f1');
      assert.equal(run([...tlsArgs('ca', 'agent'), 'cat', 'l0', '/etc/hostname']).stdout, 'base\n');
      assert.deepEqual(events, ['connected']);
    } finally {
      session.close();
      client.close();
      installServerCert('server1');
    }
  });

  test('an agent mount over mutual TLS keeps serving reads across a rotation', { skip: canMountFuse() ? false : 'needs root and /dev/fuse' }, async () => {
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-tls-mnt-'));
    const agent = await startAgent({ resolver: resolver.address, mounts: [`l0:${mnt}`], extra: tlsArgs('ca', 'agent') });
    try {
      assert.equal(agent.logs.find((l) => l.event === 'agent.ready')?.tls, 'mutual');
      assert.equal(fs.readFileSync(path.join(mnt, 'data/f2'), 'utf8'), 'file 2\n');
      const served = await servedSerial();
      const reloads = resolver.logs.filter((l) => l.event === 'resolver.tls_reloaded').length;
      installServerCert(served === 1001 ? 'server2' : 'server1');
      resolver.child.kill('SIGHUP');
      await waitFor('resolver.tls_reloaded', () => resolver.logs.filter((l) => l.event === 'resolver.tls_reloaded').length > reloads || undefined);
      assert.notEqual(await servedSerial(), served, 'new connections see the other certificate');
      // Files not read before: the reads go to the resolver, on the Session opened before the rotation.
      for (let i = 3; i < 8; i++) assert.equal(fs.readFileSync(path.join(mnt, `data/f${i}`), 'utf8'), `file ${i}\n`);
      assert.equal(agent.logs.filter((l) => l.event === 'agent.session.broken').length, 0, 'the Session was not dropped');
      const sessions = resolver.logs.filter((l) => l.event === 'rpc.caller' && l.method === 'SessionService/session');
      assert.ok(sessions.some((l) => l.caller === 'spiffe://strata.test/agent'), 'the agent is known by its SPIFFE id');
    } finally {
      forceUnmount(mnt);
      await agent.stop();
      fs.rmSync(mnt, { recursive: true, force: true });
      installServerCert('server1');
    }
  });
});

describe('the agent rotates its own certificate on SIGHUP', () => {
  test('reconnections present the new certificate; the mount keeps serving throughout', { skip: canMountFuse() ? false : 'needs root and /dev/fuse' }, async () => {
    fs.copyFileSync(file('agent.crt'), file('agent-live.crt'));
    fs.copyFileSync(file('agent.key'), file('agent-live.key'));
    const port = await freePort();
    const serverArgs = ['--tls-cert', file('server1.crt'), '--tls-key', file('server1.key'), '--tls-client-ca', file('ca.crt'), '--grace-ms', '500', ...ADMINS];
    let r = await startResolver({ store: fx.store, port, extra: serverArgs });
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-tls-mnt-'));
    const agent = await startAgent({ resolver: r.address, mounts: [`l0:${mnt}`], extra: ['--tls-ca', file('ca.crt'), '--tls-cert', file('agent-live.crt'), '--tls-key', file('agent-live.key')] });
    const sessionCallers = (p: ResolverProcess): string[] => p.logs.filter((l) => l.event === 'rpc.caller' && l.method === 'SessionService/session').map((l) => String(l.caller));
    try {
      assert.equal(fs.readFileSync(path.join(mnt, 'data/f2'), 'utf8'), 'file 2\n');
      assert.deepEqual([...new Set(sessionCallers(r))], ['spiffe://strata.test/agent']);

      fs.copyFileSync(file('agent2.crt'), file('agent-live.crt'));
      fs.copyFileSync(file('agent2.key'), file('agent-live.key'));
      agent.child.kill('SIGHUP');
      await waitFor('agent.tls_reloaded', () => agent.logs.find((l) => l.event === 'agent.tls_reloaded'));
      assert.equal(fs.readFileSync(path.join(mnt, 'data/f3'), 'utf8'), 'file 3\n');
      assert.equal(agent.logs.filter((l) => l.event === 'agent.session.broken').length, 0, 'the reload dropped no Session');

      // A resolver restart makes the agent connect again: with the new certificate, on every channel.
      await r.stop();
      r = await startResolver({ store: fx.store, port, extra: serverArgs });
      const next = r;
      const callersOf = (): string[] => next.logs.filter((l) => l.event === 'rpc.caller').map((l) => String(l.caller));
      const callers = await waitFor('calls from the agent', () => (callersOf().length > 0 ? callersOf() : undefined));
      assert.deepEqual([...new Set(callers)], ['spiffe://strata.test/agent-rotated']);
      assert.equal(fs.readFileSync(path.join(mnt, 'data/f4'), 'utf8'), 'file 4\n');
    } finally {
      forceUnmount(mnt);
      await agent.stop();
      await r.stop();
      fs.rmSync(mnt, { recursive: true, force: true });
    }
  });
});

describe('the agent at start', () => {
  test('an agent that does not trust the resolver says why it cannot connect, not just that nothing answers', async () => {
    const agent = await startAgent({ resolver: resolver.address, extra: tlsArgs('other', 'agent') });
    try {
      const failed = await waitFor('agent.handshake_failed', () => agent.logs.find((l) => l.event === 'agent.handshake_failed'));
      assert.match(String(failed.err), /^TLS handshake with 127\.0\.0\.1:\d+ failed: certificate signed by an unknown CA/);
    } finally {
      await agent.stop();
    }
  });
});

describe('plaintext only when asked for', () => {
  const resolverCmd = (args: string[]): { status: number | null; stderr: string } => {
    const r = spawnSync(process.execPath, [STRATA_BIN, 'resolver', '--store', fx.store, ...args], { encoding: 'utf8', timeout: 15_000 });
    return { status: r.status, stderr: r.stderr };
  };

  test('a non-loopback address without TLS or --plaintext: refused with one line, exit 2', () => {
    const r = resolverCmd(['--listen', '0.0.0.0:0']);
    assert.equal(r.status, 2);
    assert.deepEqual(r.stderr.trim().split('\n'), [
      'strata resolver: --listen 0.0.0.0:0 is reachable from other hosts: give --tls-cert and --tls-key (and --tls-client-ca for mutual TLS), or --plaintext to serve it unencrypted',
    ]);
  });

  test('--plaintext, or TLS, makes it a valid configuration; loopback needs neither', () => {
    assert.equal(resolverCmd(['--listen', '0.0.0.0:0', '--plaintext', '--check-config']).status, 0);
    assert.equal(resolverCmd(['--listen', '0.0.0.0:0', '--tls-cert', file('server1.crt'), '--tls-key', file('server1.key'), '--check-config']).status, 0);
    assert.equal(resolverCmd(['--listen', '127.0.0.1:0', '--check-config']).status, 0);
  });

  test('a certificate without its key, or a key that is not the certificate\'s: one line, exit 2', () => {
    const half = resolverCmd(['--tls-cert', file('server1.crt')]);
    assert.equal(half.status, 2);
    assert.match(half.stderr.trim(), /^strata resolver: --tls-cert needs --tls-key/);
    const wrong = resolverCmd(['--listen', '127.0.0.1:0', '--tls-cert', file('server1.crt'), '--tls-key', file('agent.key')]);
    assert.equal(wrong.status, 2);
    assert.equal(wrong.stderr.trim().split('\n').length, 1, wrong.stderr);
    assert.match(wrong.stderr, /do not make a usable identity/);
  });
});
