import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, Metadata, credentials, status } from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { StrataClient } from '@strata/client';
import { Errno, errnoName, type StrataError } from '@strata/errors';
import { SessionRequest, SessionResponse, StatRequest, fromServiceError } from '@strata/protocol';
import { startResolver, waitFor, type ResolverProcess } from '@strata/harness';
import { mainStack } from '../support/main-fixture';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { failure } from '../support/failure';

let fx: StoreFixture;
let resolver: ResolverProcess;
let client: StrataClient;
let raw: Client;
let top: { id: number };

before(async () => {
  fx = await makeStore(mainStack(), 'trusted');
  resolver = await startResolver({ store: fx.store });
  client = new StrataClient({ resolver: resolver.address, retry: { attempts: 1, backoffMs: 0 } });
  raw = new Client(resolver.address, credentials.createInsecure());
  top = { id: fx.layers[fx.layers.length - 1].layerId };
});

after(async () => {
  client?.close();
  raw?.close();
  const code = await resolver?.stop();
  fx?.cleanup();
  assert.equal(code, 0, 'resolver exits 0 on SIGTERM');
});


async function drain(gen: AsyncGenerator<unknown>): Promise<void> {
  for await (const item of gen) void item;
}

function expectStatus(err: StrataError, code: number, errno: number): void {
  assert.equal(err.code, code, `status ${err.code} (${err.message})`);
  assert.equal(errnoName(err.errno), errnoName(errno), err.message);
}

/** A unary call with hand-made request bytes: what a buggy or hostile client can send. */
function rawUnary(method: string, body: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    raw.makeUnaryRequest(method, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(body), (err, res) => (err ? reject(err) : resolve(res as Buffer))),
  );
}

function layerRefBytes(w: BinaryWriter, field: number, id: number): void {
  w.tag(field, 2).fork().tag(1, 0).uint64(id).join();
}

describe('bad input gets a precise status and never hurts the resolver', () => {
  test('unknown layer or path: NOT_FOUND with ENOENT; a path through a file: ENOTDIR', async () => {
    expectStatus(await failure(client.stat({ id: 999 }, '/')), status.NOT_FOUND, Errno.ENOENT);
    expectStatus(await failure(client.stat({ name: 'no-such-layer' }, '/')), status.NOT_FOUND, Errno.ENOENT);
    expectStatus(await failure(client.stat(top, '/etc/nope')), status.NOT_FOUND, Errno.ENOENT);
    // Cached negative entries answer the same the second time.
    expectStatus(await failure(client.stat(top, '/etc/nope')), status.NOT_FOUND, Errno.ENOENT);
    expectStatus(await failure(client.stat(top, '/etc/hostname/x')), status.INVALID_ARGUMENT, Errno.ENOTDIR);
    const e = await failure(client.stat(top, '/etc/nope'));
    assert.equal(e.path?.toString(), '/etc/nope', 'the error names the path');
  });

  test('NUL bytes, "..", relative, empty and over-long paths: INVALID_ARGUMENT', async () => {
    expectStatus(await failure(client.stat(top, Buffer.from('/etc/\0passwd'))), status.INVALID_ARGUMENT, Errno.EINVAL);
    expectStatus(await failure(client.stat(top, '/etc/../etc/passwd')), status.INVALID_ARGUMENT, Errno.EINVAL);
    expectStatus(await failure(client.stat(top, 'etc/passwd')), status.INVALID_ARGUMENT, Errno.EINVAL);
    expectStatus(await failure(client.stat(top, '')), status.INVALID_ARGUMENT, Errno.EINVAL);
    expectStatus(await failure(client.stat(top, '/' + 'a/'.repeat(2100))), status.INVALID_ARGUMENT, Errno.ENAMETOOLONG);
    expectStatus(await failure(client.stat(top, '/' + 'n'.repeat(256))), status.INVALID_ARGUMENT, Errno.ENAMETOOLONG);
    expectStatus(await failure(drain(client.walk(top, '/../'))), status.INVALID_ARGUMENT, Errno.EINVAL);
    expectStatus(await failure(client.stat({ id: 0 }, '/')), status.INVALID_ARGUMENT, Errno.EINVAL);
  });

  test('absurd and negative offsets and lengths: INVALID_ARGUMENT; past end of file: empty, eof', async () => {
    expectStatus(await failure(client.readDirPage(top, '/etc', 2 ** 60)), status.INVALID_ARGUMENT, Errno.EINVAL);
    expectStatus(await failure(drain(client.read(top, '/etc/passwd', 2 ** 60))), status.INVALID_ARGUMENT, Errno.EINVAL);
    expectStatus(await failure(drain(client.read(top, '/etc/passwd', 0, 2 ** 62))), status.INVALID_ARGUMENT, Errno.EINVAL);
    // -1 as a client in another language would send it: 2^64-1 on the wire.
    const w = new BinaryWriter();
    layerRefBytes(w, 1, top.id);
    w.tag(2, 2).bytes(Buffer.from('/etc/passwd')).tag(3, 0).int64(-1);
    const err = fromServiceError(await rawUnary('/strata.v1.ProjectionService/ReadDir', w.finish()).catch((e: unknown) => e));
    expectStatus(err, status.INVALID_ARGUMENT, Errno.EINVAL);
    const chunks = [];
    for await (const c of client.read(top, '/etc/passwd', 1e12, 10)) chunks.push(c);
    assert.equal(Buffer.concat(chunks).length, 0);
    // A huge readdir offset that is still a number is simply the end of the listing.
    const page = await client.readDirPage(top, '/etc', 1e9);
    assert.deepEqual([page.entries.length, page.eof], [0, true]);
  });

  test('reading a directory: EISDIR; readlink of a file: EINVAL; missing xattr: ENODATA', async () => {
    expectStatus(await failure(drain(client.read(top, '/etc'))), status.INVALID_ARGUMENT, Errno.EISDIR);
    expectStatus(await failure(client.readLink(top, '/etc/passwd')), status.INVALID_ARGUMENT, Errno.EINVAL);
    expectStatus(await failure(client.getXattr(top, '/etc/passwd', 'user.nothing')), status.NOT_FOUND, Errno.ENODATA);
    expectStatus(await failure(client.readDirPage(top, '/etc/passwd')), status.INVALID_ARGUMENT, Errno.ENOTDIR);
  });

  test('a base chain with a cycle (catalog edited by hand): FAILED_PRECONDITION with ELOOP', async () => {
    const catalog = path.join(fx.store, '.strata/catalog/layers');
    const write = (id: number, base: number): void => {
      const rec = { layerId: id, baseLayerId: base, name: `cycle${id}`, source: 'dir:layers/0', filesystemPath: '/', layerType: 'snapshot', mountOptions: ['read-only'], generation: 1, createTimeMs: 1, updateTimeMs: 1 };
      fs.writeFileSync(path.join(catalog, `${id}.json`), JSON.stringify(rec));
    };
    write(900, 901);
    write(901, 900);
    try {
      // The catalog is re-read within its refresh interval: ask until the cycle shows (bounded), then check the answer.
      const stat900 = (): Promise<StrataError> => failure(client.stat({ id: 900 }, '/'));
      const looped = async (): Promise<StrataError | undefined> => {
        const e = await stat900();
        return e.errno === Errno.ELOOP ? e : undefined;
      };
      const err = await waitFor('the catalog re-read to find the cycle', looped, 2_000).catch(stat900);
      expectStatus(err, status.FAILED_PRECONDITION, Errno.ELOOP);
    } finally {
      fs.rmSync(path.join(catalog, '900.json'));
      fs.rmSync(path.join(catalog, '901.json'));
    }
  });

  test('oversized requests: RESOURCE_EXHAUSTED before any work', async () => {
    const big = StatRequest.encode({ layer: { ref: { $case: 'id', id: top.id } }, path: Buffer.alloc(2 << 20, 0x61) }).finish();
    const err = fromServiceError(await rawUnary('/strata.v1.ProjectionService/Stat', big).catch((e: unknown) => e));
    assert.equal(err.code, status.RESOURCE_EXHAUSTED, err.message);
  });

  test('garbage bytes and bad Session messages are answered, not fatal', async () => {
    const err = fromServiceError(await rawUnary('/strata.v1.ProjectionService/Stat', Buffer.from([0xff, 0xff, 0xff])).catch((e: unknown) => e));
    assert.equal(err.code, status.INVALID_ARGUMENT, err.message);

    const stream = raw.makeBidiStreamRequest('/strata.v1.SessionService/Session', (b: Buffer) => b, (b: Buffer) => b, new Metadata());
    const answers = new Map<number, SessionResponse>();
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (b: Buffer) => {
        const res = SessionResponse.decode(b);
        answers.set(res.id, res);
        if (answers.size === 3) resolve();
      });
      stream.on('error', reject);
    });
    // id 7: a read with offset 2^64-1; id 8: no request at all; id 9: a good stat.
    const w = new BinaryWriter();
    w.tag(1, 0).uint64(7).tag(4, 2).fork();
    layerRefBytes(w, 1, top.id);
    w.tag(2, 2).bytes(Buffer.from('/etc/passwd')).tag(3, 0).int64(-1).join();
    stream.write(Buffer.from(w.finish()));
    stream.write(Buffer.from(SessionRequest.encode({ id: 8, request: undefined, traceContext: {} }).finish()));
    stream.write(
      Buffer.from(
        SessionRequest.encode({ id: 9, request: { $case: 'stat', stat: { layer: { ref: { $case: 'id', id: top.id } }, path: Buffer.from('/etc') } }, traceContext: {} }).finish(),
      ),
    );
    await done;
    stream.end();
    const r7 = answers.get(7)?.response;
    const r8 = answers.get(8)?.response;
    assert.equal(r7?.$case, 'error');
    assert.equal(r7?.$case === 'error' && r7.error.code, status.INVALID_ARGUMENT);
    assert.equal(r8?.$case === 'error' && r8.error.code, status.INVALID_ARGUMENT);
    assert.equal(answers.get(9)?.response?.$case, 'stat');
  });

  test('deadlines: a call past its deadline ends with DEADLINE_EXCEEDED', async () => {
    const hasty = new StrataClient({ resolver: resolver.address, deadlineMs: 1, retry: { attempts: 1, backoffMs: 0 } });
    try {
      const err = await failure(async () => {
        for (let i = 0; i < 50; i++) await hasty.stat(top, `/etc/uncached-${i}`).catch((e: StrataError) => {
          if (e.code !== status.NOT_FOUND) throw e;
        });
      });
      assert.equal(err.code, status.DEADLINE_EXCEEDED);
    } finally {
      hasty.close();
    }
  });

  test('after all of it the resolver still serves and logged no internal error', async () => {
    assert.equal((await client.stat(top, '/etc/passwd')).size > 0, true);
    assert.equal(resolver.child.exitCode, null);
    assert.deepEqual(resolver.logs.filter((l) => l.event === 'rpc.internal'), []);
  });
});
