import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { Server, ServerCredentials, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import { Errno, GrpcCode, StrataError, isStrataError } from '@strata/errors';
import { LayerServiceService, ProjectionServiceService, toServiceError, type WalkRequest, type WalkResponse } from '@strata/protocol';
import { StrataClient } from './strata-client';
import { isTransportError, type TransportError } from './transport-error';

// Real sockets and real grpc-js: the mapping reads grpc-js's wording, so these pin it.

const servers: (net.Server | Server)[] = [];
const sockets: net.Socket[] = [];

async function listen(server: net.Server): Promise<string> {
  servers.push(server);
  // Closed at the end whatever the peer does: a server's close() waits for its connections.
  server.on('connection', (sock: net.Socket) => sockets.push(sock));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

async function grpcServer(setup: (s: Server) => void): Promise<string> {
  const s = new Server();
  setup(s);
  servers.push(s);
  const port = await new Promise<number>((resolve, reject) =>
    s.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return `127.0.0.1:${port}`;
}

/** A port nothing listens on (bound, then closed). */
async function deadPort(): Promise<string> {
  const s = net.createServer();
  const a = await new Promise<string>((resolve) => s.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(s.address() as net.AddressInfo).port}`)));
  await new Promise((resolve) => s.close(resolve));
  return a;
}

async function failure(resolver: string, call: (c: StrataClient) => Promise<unknown>, deadlineMs = 2_000): Promise<StrataError> {
  const c = new StrataClient({ resolver, deadlineMs, retry: { attempts: 2, backoffMs: 10 } });
  try {
    await call(c);
  } catch (err) {
    assert.ok(isStrataError(err), String(err));
    return err;
  } finally {
    c.close();
  }
  assert.fail('expected a failure');
}

const list = (c: StrataClient): Promise<unknown> => c.listLayers();
async function walk(c: StrataClient): Promise<void> {
  for await (const batch of c.walk({ id: 1 }, '/')) void batch;
}

function transport(err: StrataError): TransportError {
  assert.ok(isTransportError(err), `a TransportError, got ${err.name}: ${err.message}`);
  assert.ok(!/No connection established|Resolution note|LB pick/.test(err.message), err.message);
  return err;
}

let dead: string;
let silent: string;
let garbage: string;
let http1: string;
let other: string;
let strata: string;
let tlsOnly: string;

/** A TLS server with a throw-away self-signed certificate. */
async function tlsServer(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${dir}/k.pem`, '-out', `${dir}/c.pem`, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    const server = tls.createServer({ key: fs.readFileSync(`${dir}/k.pem`), cert: fs.readFileSync(`${dir}/c.pem`), ALPNProtocols: ['h2'] }, () => undefined);
    server.on('tlsClientError', () => undefined);
    return await listen(server);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

before(async () => {
  dead = await deadPort();
  silent = await listen(net.createServer(() => undefined));
  garbage = await listen(net.createServer((s) => s.end('220 hello, this is not HTTP/2\r\n')));
  http1 = await listen(http.createServer((_req, res) => res.end('hi')));
  other = await grpcServer(() => undefined);
  tlsOnly = await tlsServer();
  strata = await grpcServer((s) => {
    s.addService(LayerServiceService, {
      listLayers: (_call: unknown, cb: (err: Partial<ServiceError>) => void) => cb(toServiceError(StrataError.unavailable('the store is not mounted'))),
    });
  });
});

after(() => {
  for (const sock of sockets) sock.destroy();
  for (const s of servers) {
    if (s instanceof Server) s.forceShutdown();
    else s.close();
  }
});

describe('failures to reach a resolver read as one sentence, status and errno kept', () => {
  test('nothing listening: connection refused, UNAVAILABLE, EIO, retryable', async () => {
    for (const call of [list, walk]) {
      const e = transport(await failure(dead, call));
      assert.equal(e.message, `no resolver answers at ${dead} (connection refused)`);
      assert.deepEqual([e.failure, e.systemCode, e.code, e.errno, e.retryable], ['refused', 'ECONNREFUSED', GrpcCode.UNAVAILABLE, Errno.EIO, true]);
      assert.deepEqual(e.addresses, [dead]);
    }
  });

  test('several resolvers: each one tried is named', async () => {
    // The kernel may hand the same free port out twice in a row.
    let dead2 = await deadPort();
    while (dead2 === dead) dead2 = await deadPort();
    const e = transport(await failure(`${dead},${dead2}`, list));
    assert.equal(e.message, `no resolver answers at ${dead}, ${dead2} (connection refused)`);
    const mixed = transport(await failure(`${dead},nosuchhost.invalid:7400`, list));
    assert.equal(mixed.message, `no resolver answered (${dead}: connection refused; nosuchhost.invalid:7400: cannot resolve host nosuchhost.invalid)`);
  });

  test('a host name that does not resolve', async () => {
    const e = transport(await failure('nosuchhost.invalid:7400', list));
    assert.equal(e.message, 'cannot resolve host nosuchhost.invalid (resolver address nosuchhost.invalid:7400)');
    assert.equal(e.failure, 'dns');
  });

  test('a peer that takes the connection and says nothing: a timeout, for calls and for streams', async () => {
    const e = transport(await failure(silent, list, 300));
    assert.equal(e.message, `no answer from ${silent} within 300 ms`);
    assert.deepEqual([e.failure, e.code, e.errno], ['timeout', GrpcCode.DEADLINE_EXCEEDED, Errno.ETIMEDOUT]);
    const started = Date.now();
    const s = transport(await failure(silent, walk, 300));
    assert.equal(s.message, `no answer from ${silent} within 300 ms`);
    assert.ok(Date.now() - started < 5_000, 'a stream to a silent peer ends');
  });

  test('peers that are not gRPC or not strata', async () => {
    for (const a of [garbage, http1]) {
      const e = transport(await failure(a, list));
      assert.equal(e.message, `${a} is not a gRPC server (it does not speak HTTP/2)`);
      assert.equal(e.failure, 'not-grpc');
    }
    const t = transport(await failure(tlsOnly, list));
    assert.equal(t.message, `${tlsOnly} closed the connection before gRPC started (a TLS-only server: give --tls-ca; or not gRPC)`);
    const e = transport(await failure(other, list));
    assert.equal(e.message, `${other} does not serve /strata.v1.LayerService/ListLayers (not a strata resolver, or an older one)`);
    assert.deepEqual([e.failure, e.code], ['not-strata', GrpcCode.UNIMPLEMENTED]);
  });

  test("a resolver's own error, even UNAVAILABLE, stays the resolver's", async () => {
    const e = await failure(strata, list);
    assert.ok(!isTransportError(e));
    assert.deepEqual([e.message, e.code], ['the store is not mounted', GrpcCode.UNAVAILABLE]);
  });

  test('a stream that answers slowly is not cut by the silence watch', async () => {
    const slow = await grpcServer((s) => {
      s.addService(ProjectionServiceService, {
        walk: (call: ServerWritableStream<WalkRequest, WalkResponse>) => {
          setTimeout(() => {
            call.write({ entries: [{ path: Buffer.from('/'), attr: undefined, linkTarget: Buffer.alloc(0) }] });
            call.end();
          }, 600);
        },
      });
    });
    const c = new StrataClient({ resolver: slow, deadlineMs: 200 });
    try {
      let n = 0;
      for await (const batch of c.walk({ id: 1 }, '/')) n += batch.length;
      assert.equal(n, 1);
    } finally {
      c.close();
    }
  });
});
