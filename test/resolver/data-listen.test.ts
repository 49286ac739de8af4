import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { DataLane, StrataClient, dataPortOf, type SessionAnswer } from '@strata/client';
import type { StrataError } from '@strata/errors';
import { STRATA_BIN, freePort, startResolver, waitFor, type ResolverProcess } from '@strata/harness';
import { SessionServiceService } from '@strata/protocol';
import { CertDir } from '../support/certs';
import { makeStore, type StoreFixture } from '../support/store-fixture';

/**
 * `--data-listen HOST:PORT`: the data stream on a port the operator chose
 * (a firewall admits it), announced to Sessions as such; off like
 * STRATA_DATA_STREAM=0; a busy port fails the start in one line; over TLS
 * it takes the certificate reloaded on SIGHUP.
 */

const CONTENT = Buffer.from(Array.from({ length: 4096 }, (_, i) => `line ${i}\n`).join(''));
let fx: StoreFixture;
const started: ResolverProcess[] = [];

before(async () => {
  fx = await makeStore([{ entries: [{ type: 'file', path: '/data/file', content: CONTENT.toString('utf8') }] }]);
});

after(async () => {
  for (const r of started) await r.stop('SIGKILL').catch(() => undefined);
  fx?.cleanup();
});

async function resolverWith(extra: string[], env: Record<string, string> = {}, store = fx.store): Promise<ResolverProcess> {
  const r = await startResolver({ store, extra, env });
  started.push(r);
  return r;
}

/** The data port a new Session stream's first headers announce (undefined: none); bounded. */
async function announcedPort(address: string): Promise<number | undefined> {
  const Client = grpc.makeGenericClientConstructor(SessionServiceService, 'SessionService');
  const client = new Client(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<number | undefined>((resolve, reject) => {
      const call = client.session() as grpc.ClientDuplexStream<unknown, unknown>;
      const timer = setTimeout(() => reject(new Error('no Session headers within 10 s')), 10_000);
      call.on('metadata', (md: grpc.Metadata) => {
        clearTimeout(timer);
        resolve(dataPortOf(md));
        call.cancel();
      });
      call.on('error', () => undefined);
      // Headers come at once when they name a data port, else with the first answer.
      call.write({ id: 1, request: { $case: 'stat', stat: { layer: { ref: { $case: 'id', id: fx.layers[0].layerId } }, path: Buffer.from('/') } }, traceContext: {} });
    });
  } finally {
    client.close();
  }
}

/** One read sent straight to the data stream at 127.0.0.1:port; its answer. */
function readOverDataPort(port: number, offset: number, length: number): Promise<SessionAnswer | StrataError> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer on data port ${port} within 10 s`)), 10_000);
    const lane = new DataLane('127.0.0.1', port, {
      ready: () => lane.send(1, { layer: { ref: { $case: 'id', id: fx.layers[0].layerId } }, path: Buffer.from('/data/file'), offset, length }, {}),
      answer: (_id, answer) => {
        clearTimeout(timer);
        lane.close();
        resolve(answer);
      },
      broken: (err) => {
        clearTimeout(timer);
        reject(err);
      },
    });
  });
}

/** `strata resolver ...` that is expected to stop by itself (a failed start, --check-config); bounded. */
function runResolver(args: string[], env: Record<string, string> = {}): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [STRATA_BIN, 'resolver', '--store', fx.store, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('--data-listen', () => {
  test('HOST:PORT: the data stream listens there, Sessions announce exactly that port, and a client reads over it', async () => {
    const port = await freePort();
    const r = await resolverWith(['--data-listen', `127.0.0.1:${port}`]);
    const listening = r.logs.find((l) => l.event === 'resolver.data_stream.listening');
    assert.equal(listening?.port, port);
    assert.equal(listening?.host, '127.0.0.1');
    assert.notEqual(r.port, port);
    assert.equal(await announcedPort(r.address), port);

    const answer = await readOverDataPort(port, 100, 5000);
    assert.ok(!(answer instanceof Error) && answer.$case === 'read', String(answer));
    assert.ok(answer.read.data.equals(CONTENT.subarray(100, 5100)), 'the bytes of the file');

    // An ordinary client finds it from the Session's headers and reads through it.
    const client = new StrataClient({ resolver: r.address });
    const data: string[] = [];
    const s = client.session({ deadlineMs: 10_000, onDataEvent: (e) => data.push(e.type) });
    try {
      await s.request({ $case: 'stat', stat: { layer: { ref: { $case: 'id', id: fx.layers[0].layerId } }, path: Buffer.from('/data/file') } });
      await waitFor('the data stream connected', () => data.includes('connected') || undefined);
      const a = await s.request({ $case: 'read', read: { layer: { ref: { $case: 'id', id: fx.layers[0].layerId } }, path: Buffer.from('/data/file'), offset: 0, length: CONTENT.length } });
      assert.ok(a.$case === 'read' && a.read.data.equals(CONTENT));
      assert.deepEqual(data, ['connected'], 'no broken data stream');
    } finally {
      s.close();
      client.close();
    }
  });

  test('HOST:0 picks a free port on HOST; off and 0 turn the data stream off, as STRATA_DATA_STREAM=0 still does', async () => {
    const any = await resolverWith(['--data-listen', '127.0.0.1:0']);
    const port = any.logs.find((l) => l.event === 'resolver.data_stream.listening')?.port;
    assert.ok(typeof port === 'number' && port > 0);
    assert.equal(await announcedPort(any.address), port);
    await any.stop();

    const offs: { extra: string[]; env?: Record<string, string> }[] = [
      { extra: ['--data-listen', 'off'] },
      { extra: ['--data-listen', '0'] },
      { extra: [], env: { STRATA_RESOLVER_DATA_LISTEN: 'off' } },
      { extra: [], env: { STRATA_DATA_STREAM: '0' } },
    ];
    for (const how of offs) {
      const r = await resolverWith(how.extra, how.env);
      assert.equal(r.logs.find((l) => l.event === 'resolver.data_stream.listening'), undefined, JSON.stringify(how));
      assert.equal(await announcedPort(r.address), undefined, JSON.stringify(how));
      await r.stop();
    }
    // Neither given: beside the gRPC port, as before.
    const plain = await resolverWith([]);
    const beside = plain.logs.find((l) => l.event === 'resolver.data_stream.listening');
    assert.equal(beside?.host, '127.0.0.1');
    assert.equal(await announcedPort(plain.address), beside?.port);
    await plain.stop();
  });

  test('a port in use fails the start with one line and exit code 1', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const r = runResolver(['--listen', '127.0.0.1:0', '--data-listen', `127.0.0.1:${port}`]);
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stderr, `strata resolver: cannot listen on 127.0.0.1:${port} (--data-listen): address already in use\n`);
    } finally {
      holder.close();
    }
  });

  test('a bad value, an address other hosts reach without TLS, and a clash with STRATA_DATA_STREAM=0 are configuration problems (exit 2)', () => {
    const bad = runResolver(['--check-config', '--data-listen', 'http://x:1']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^strata resolver: --data-listen: expected HOST:PORT, not a URL, got "http:\/\/x:1" \(or 0 \/ off for no data stream\)\n$/);
    const range = runResolver(['--check-config'], { STRATA_RESOLVER_DATA_LISTEN: '127.0.0.1:70000' });
    assert.equal(range.status, 2);
    assert.match(range.stderr, /\$STRATA_RESOLVER_DATA_LISTEN.*out of range/);
    const open = runResolver(['--check-config', '--data-listen', '0.0.0.0:7401']);
    assert.equal(open.status, 2);
    assert.match(open.stderr, /--data-listen 0\.0\.0\.0:7401 is reachable from other hosts/);
    assert.equal(runResolver(['--check-config', '--data-listen', '0.0.0.0:7401', '--plaintext']).status, 0);
    const clash = runResolver(['--check-config', '--data-listen', '127.0.0.1:7401'], { STRATA_DATA_STREAM: '0' });
    assert.equal(clash.status, 2);
    assert.match(clash.stderr, /STRATA_DATA_STREAM=0/);
    const shown = spawnSync(process.execPath, [STRATA_BIN, 'resolver', '--store', fx.store, '--check-config', '--json', '--data-listen', '127.0.0.1:7401'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(shown.status, 0, shown.stderr);
    const opts = (JSON.parse(shown.stdout) as { options: Record<string, { value?: unknown }> }).options;
    assert.equal(opts['data-listen']?.value, '127.0.0.1:7401');
  });
});

describe('--data-listen over mutual TLS', () => {
  let certs: CertDir;
  before(() => {
    certs = new CertDir('strata-data-listen-');
    certs.makeCa('ca');
    certs.makeLeaf('server1', 'ca', 'resolver', 1001, 'IP:127.0.0.1');
    certs.makeLeaf('server2', 'ca', 'resolver', 1002, 'IP:127.0.0.1');
    certs.makeLeaf('agent', 'ca', 'agent', 2001, 'URI:spiffe://strata.test/agent');
  });
  after(() => certs?.remove());

  /** The serial of the certificate a new TLS connection to 127.0.0.1:port is shown (presenting the agent's). */
  const servedSerial = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(certs.file('ca.crt')), cert: fs.readFileSync(certs.file('agent.crt')), key: fs.readFileSync(certs.file('agent.key')) }, () => {
        const serial = parseInt(socket.getPeerCertificate().serialNumber, 16);
        socket.end();
        resolve(serial);
      });
      socket.setTimeout(10_000, () => socket.destroy(new Error('TLS handshake timed out')));
      socket.on('error', reject);
    });

  /** Serves server1, checks the data port shows it, rotates to server2 with SIGHUP, checks new data connections see server2. */
  async function rotation(r: ResolverProcess, port: number): Promise<void> {
    assert.equal(await servedSerial(port), 1001);
    fs.copyFileSync(certs.file('server2.crt'), certs.file('live.crt'));
    fs.copyFileSync(certs.file('server2.key'), certs.file('live.key'));
    r.child.kill('SIGHUP');
    await waitFor('resolver.tls_reloaded', () => r.logs.find((l) => l.event === 'resolver.tls_reloaded'));
    assert.equal(await servedSerial(port), 1002, 'new data connections get the new certificate');
    assert.equal(await servedSerial(r.port), 1002, 'as the gRPC port does');
    // A client without a certificate of the CA is refused by the data port as by the gRPC port.
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(certs.file('ca.crt')) }, () => socket.once('data', resolve).write('STRATAD1'));
        socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
        socket.on('error', reject);
        socket.on('close', () => reject(new Error('closed')));
      }),
    );
  }

  /** A store of its own (mutual TLS marks a store enforced, which the plaintext resolvers above would then refuse), serving server1. */
  async function tlsStore(t: TestContext): Promise<string> {
    fs.copyFileSync(certs.file('server1.crt'), certs.file('live.crt'));
    fs.copyFileSync(certs.file('server1.key'), certs.file('live.key'));
    const own = await makeStore([{ entries: [{ type: 'file', path: '/f', content: 'f' }] }]);
    t.after(() => own.cleanup());
    return own.store;
  }

  const tlsArgs = (): string[] => ['--tls-cert', certs.file('live.crt'), '--tls-key', certs.file('live.key'), '--tls-client-ca', certs.file('ca.crt')];

  test('at --data-listen HOST:PORT it serves TLS with the resolver identity and takes the certificate reloaded on SIGHUP', async (t) => {
    const store = await tlsStore(t);
    const port = await freePort();
    const r = await resolverWith([...tlsArgs(), '--data-listen', `127.0.0.1:${port}`], {}, store);
    const listening = r.logs.find((l) => l.event === 'resolver.data_stream.listening');
    assert.equal(listening?.port, port);
    assert.equal(listening?.tls, true);
    await rotation(r, port);
    await r.stop();
  });

  test('beside the gRPC port (STRATA_DATA_STREAM=tls) it takes the reloaded certificate too', async (t) => {
    const store = await tlsStore(t);
    const r = await resolverWith(tlsArgs(), { STRATA_DATA_STREAM: 'tls' }, store);
    const listening = r.logs.find((l) => l.event === 'resolver.data_stream.listening');
    assert.equal(listening?.tls, true);
    await rotation(r, listening?.port as number);
    await r.stop();
  });

  test('a TLS resolver without --data-listen or STRATA_DATA_STREAM=tls offers no data stream, as before', async (t) => {
    const store = await tlsStore(t);
    const r = await resolverWith(tlsArgs(), {}, store);
    assert.equal(r.logs.find((l) => l.event === 'resolver.data_stream.listening'), undefined);
    await r.stop();
  });
});
