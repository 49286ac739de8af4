import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, Metadata, credentials, status, type ClientDuplexStream, type ClientReadableStream } from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { StrataClient } from '@strata/client';
import { Errno, GrpcCode, StrataError, errnoName } from '@strata/errors';
import { rssOf, startResolver, waitFor, type ResolverProcess } from '@strata/harness';
import type { LayerRef } from '@strata/layers';
import { SessionRequest, SessionResponse, StatRequest, WalkRequest, fromServiceError } from '@strata/protocol';
import { CertDir } from '../support/certs';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { failure } from '../support/failure';

/**
 * The resolver probed as an attacker on the network would: a client with a
 * valid certificate and a read grant on one layer ("mallory") that sends
 * oversized and undecodable messages, floods Sessions it never reads and
 * thousands of streams, names paths and layers it should not, and asks for
 * absurd ranges. Real resolver processes with small limits; after all of it
 * the resolver still serves another identity and logged no internal error.
 */

const OPS = 'spiffe://strata.test/ops';
const MALLORY = 'spiffe://strata.test/mallory';
const ALICE = 'spiffe://strata.test/alice';
const MiB = 1 << 20;
const BIG = 16 * MiB;
const WIDE = 17_000;
const STREAMS = 8;
const INFLIGHT = 4;
const MAX_MESSAGE = 64 * 1024;

let certs: CertDir;
let fx: StoreFixture;
let resolver: ResolverProcess;
let plain: ResolverProcess;
let mine: { id: number };
let theirs: { id: number };
const closers: (() => void)[] = [];

function client(who: string, r: ResolverProcess = resolver): StrataClient {
  const c = new StrataClient({ resolver: r.address, tls: r === plain ? undefined : certs.clientTls(who), deadlineMs: 10_000, retry: { attempts: 1, backoffMs: 0 } });
  closers.push(() => c.close());
  return c;
}

/** A bare grpc-js client sending bytes of its own making, on a connection of its own. */
function raw(who: string | undefined, r: ResolverProcess = resolver): Client {
  const creds =
    who === undefined
      ? credentials.createInsecure()
      : credentials.createSsl(fs.readFileSync(certs.file('ca.crt')), fs.readFileSync(certs.file(`${who}.key`)), fs.readFileSync(certs.file(`${who}.crt`)));
  const c = new Client(r.address, creds, { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': -1 });
  closers.push(() => c.close());
  return c;
}

const id = (b: Buffer): Buffer => b;

function rawUnary(c: Client, method: string, body: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => c.makeUnaryRequest(method, id, id, Buffer.from(body), (err, res) => (err ? reject(err) : resolve(res as Buffer))));
}

function rawSession(c: Client): ClientDuplexStream<Buffer, Buffer> {
  return c.makeBidiStreamRequest('/strata.v1.SessionService/Session', id, id, new Metadata());
}

function rawWalk(c: Client, layer: number, p: string): ClientReadableStream<Buffer> {
  const body = WalkRequest.encode({ layer: { ref: { $case: 'id', id: layer } }, path: Buffer.from(p), maxDepth: 0, includeLinkTargets: true }).finish();
  return c.makeServerStreamRequest('/strata.v1.ProjectionService/Walk', id, id, Buffer.from(body), new Metadata());
}

/** The status a raw call or stream ends with. */
function ended(call: ClientReadableStream<Buffer> | ClientDuplexStream<Buffer, Buffer>): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    call.on('error', (e: { code: number; details: string }) => resolve({ code: e.code, details: e.details }));
    call.on('status', (s: { code: number; details: string }) => s.code === status.OK && resolve({ code: s.code, details: s.details }));
  });
}

const stat = (layer: number, p: string | Buffer, reqId: number): Buffer =>
  Buffer.from(SessionRequest.encode({ id: reqId, request: { $case: 'stat', stat: { layer: { ref: { $case: 'id', id: layer } }, path: Buffer.from(p) } }, traceContext: {} }).finish());

const bigRead = (reqId: number): Buffer =>
  Buffer.from(
    SessionRequest.encode({
      id: reqId,
      request: { $case: 'read', read: { layer: { ref: { $case: 'id', id: mine.id } }, path: Buffer.from('/big'), offset: (reqId % 16) * MiB, length: MiB } },
      traceContext: {},
    }).finish(),
  );


function expectStatus(err: StrataError, code: number, errno: number): void {
  assert.equal(err.code, code, `status ${err.code} (${err.message})`);
  assert.equal(errnoName(err.errno), errnoName(errno), err.message);
}

async function drain(gen: AsyncGenerator<unknown>): Promise<void> {
  for await (const item of gen) void item;
}

async function collect<T>(gen: AsyncGenerator<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of gen) out.push(item);
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const mb = (r: ResolverProcess): number => rssOf(r.child.pid!) / MiB;

before(async () => {
  certs = new CertDir('strata-hostile-');
  certs.makeCa('ca');
  certs.makeLeaf('server', 'ca', 'resolver', 200, 'IP:127.0.0.1');
  certs.makeLeaf('ops', 'ca', 'ops', 201, `URI:${OPS}`);
  certs.makeLeaf('mallory', 'ca', 'mallory', 202, `URI:${MALLORY}`);
  certs.makeLeaf('alice', 'ca', 'alice', 203, `URI:${ALICE}`);
  fx = await makeStore(
    [
      {
        entries: [
          { type: 'file', path: '/etc/hostname', content: 'mine\n' },
          { type: 'symlink', path: '/up', target: '../../../../../../..' },
          { type: 'symlink', path: '/etc/root', target: '/' },
          { type: 'symlink', path: '/loop', target: '/loop' },
        ],
      },
      { entries: [{ type: 'file', path: '/etc/secret', content: 'theirs\n' }] },
    ],
    'trusted',
    'hostile',
  );
  // The two layers stand on their own (the second is not built on the first) so that a grant on one says nothing of the other.
  const layer0 = path.join(fx.store, 'layers/0');
  fs.writeFileSync(path.join(layer0, 'big'), Buffer.alloc(BIG, 7));
  fs.mkdirSync(path.join(layer0, 'wide'));
  for (let i = 0; i < WIDE; i++) fs.writeFileSync(path.join(layer0, 'wide', `f${i}`), '');
  const limits = ['--max-streams-per-identity', String(STREAMS), '--session-inflight', String(INFLIGHT), '--max-message-bytes', String(MAX_MESSAGE)];
  resolver = await startResolver({ store: fx.store, extra: [...certs.serverArgs('server'), '--admin', OPS, ...limits], env: { STRATA_LOG_LEVEL: 'info' } });
  // Without an identity to bound by: plaintext on the store the mutual-TLS one serves, so read-only (issue 23 item 1).
  plain = await startResolver({ store: fx.store, extra: [...limits, '--unenforced-read-only'], env: { STRATA_LOG_LEVEL: 'info' } });
  const ops = client('ops');
  mine = { id: fx.layers[0].layerId };
  const other = await ops.createLayer({ source: 'dir:layers/1', layerType: 'base', name: 'theirs' });
  theirs = { id: other.layerId };
  await ops.grant(MALLORY, 'read', { id: mine.id });
  await ops.grant(ALICE, 'read', { prefix: '' });
});

after(async () => {
  for (const close of closers) close();
  const codes = [await resolver?.stop(), await plain?.stop()];
  fx?.cleanup();
  certs?.remove();
  assert.deepEqual(codes, [0, 0], 'both resolvers exit 0 on SIGTERM');
});

describe('a hostile client cannot crash the resolver, hold unbounded memory or starve others', () => {
  test('the limits given are the limits in force, and logged at start', () => {
    const ready = resolver.logs.find((l) => l.event === 'resolver.listening');
    assert.deepEqual(ready?.limits, { maxMessageBytes: MAX_MESSAGE, maxStreamsPerIdentity: STREAMS, sessionInflight: INFLIGHT });
  });

  test('a message over --max-message-bytes is refused with RESOURCE_EXHAUSTED, unary or in a Session; one under it is served', async () => {
    const c = raw('mallory');
    const over = StatRequest.encode({ layer: { ref: { $case: 'id', id: mine.id } }, path: Buffer.alloc(MAX_MESSAGE, 0x61) }).finish();
    const err = fromServiceError(await rawUnary(c, '/strata.v1.ProjectionService/Stat', over).catch((e: unknown) => e));
    assert.equal(err.code, status.RESOURCE_EXHAUSTED, err.message);
    const s = rawSession(c);
    const end = ended(s);
    s.write(stat(mine.id, Buffer.concat([Buffer.from('/'), Buffer.alloc(MAX_MESSAGE, 0x61)]), 1));
    assert.equal((await end).code, status.RESOURCE_EXHAUSTED);
    // Just under the limit: parsed, and refused for what it says (a path longer than PATH_MAX).
    const under = StatRequest.encode({ layer: { ref: { $case: 'id', id: mine.id } }, path: Buffer.concat([Buffer.from('/'), Buffer.alloc(MAX_MESSAGE - 64, 0x61)]) }).finish();
    const e2 = fromServiceError(await rawUnary(c, '/strata.v1.ProjectionService/Stat', under).catch((e: unknown) => e));
    expectStatus(e2, status.INVALID_ARGUMENT, Errno.ENAMETOOLONG);
  });

  test('undecodable protobuf on every kind of call: INVALID_ARGUMENT, never INTERNAL or a crash', async () => {
    const c = raw('mallory');
    // Truncated varint, a length past the end, nested groups deep enough to exhaust a recursive decoder, a wrong wire type for a field.
    const deepGroups = Buffer.alloc(20_000, 0x0b);
    const lengthPastEnd = Buffer.from([0x12, 0xff, 0xff, 0x03, 0x2f]);
    const wrongWire = new BinaryWriter().tag(1, 0).uint64(5).finish(); // layer (a message) sent as a varint
    for (const body of [Buffer.from([0xff, 0xff, 0xff]), lengthPastEnd, deepGroups, Buffer.from(wrongWire)]) {
      for (const method of ['Stat', 'ReadDir', 'GetXattr', 'StatFs']) {
        const err = fromServiceError(await rawUnary(c, `/strata.v1.ProjectionService/${method}`, body).catch((e: unknown) => e));
        assert.equal(err.code, status.INVALID_ARGUMENT, `${method}: ${err.message}`);
      }
      for (const method of ['/strata.v1.ProjectionService/Walk', '/strata.v1.ProjectionService/Read', '/strata.v1.DiffService/Diff']) {
        const call = c.makeServerStreamRequest(method, id, id, body, new Metadata());
        call.on('data', () => undefined);
        assert.equal((await ended(call)).code, status.INVALID_ARGUMENT, method);
      }
      const grant = fromServiceError(await rawUnary(c, '/strata.v1.PolicyService/Grant', body).catch((e: unknown) => e));
      assert.ok(grant.code === status.INVALID_ARGUMENT || grant.code === status.PERMISSION_DENIED, grant.message);
    }
    // A Session: garbage that still carries its id is answered under that id; garbage without one ends the stream.
    const s = rawSession(c);
    const answers: SessionResponse[] = [];
    s.on('data', (b: Buffer) => answers.push(SessionResponse.decode(b)));
    s.write(Buffer.concat([new BinaryWriter().tag(1, 0).uint64(41).finish(), deepGroups]));
    s.write(stat(mine.id, '/etc/hostname', 42));
    await waitFor('both answers', () => answers.length === 2);
    const byId = new Map(answers.map((a) => [a.id, a.response]));
    const r41 = byId.get(41);
    assert.equal(r41?.$case === 'error' && r41.error.code, status.INVALID_ARGUMENT);
    assert.equal(byId.get(42)?.$case, 'stat');
    const end = ended(s);
    s.write(deepGroups);
    assert.equal((await end).code, status.INVALID_ARGUMENT);
  });

  test('Sessions that send and never read hold a bounded share of memory; their answers all come once they read; others are served meanwhile', async () => {
    const PER_SESSION = 150;
    const warm = client('mallory');
    await drain(warm.read(mine, '/big'));
    const before = mb(resolver);
    const sessions = Array.from({ length: 4 }, () => rawSession(raw('mallory')));
    for (const s of sessions) {
      s.pause();
      s.on('error', () => undefined);
      // Every request written at once: what the resolver does not read stays in this process and in HTTP/2 flow control.
      for (let i = 0; i < PER_SESSION; i++) s.write(bigRead(i));
    }
    await sleep(2_000);
    const held = mb(resolver) - before;
    // Read in full that would be 4 × 150 MiB; back-pressure keeps it to a few answers per Session.
    assert.ok(held < 350, `the resolver grew by ${held.toFixed(0)} MiB while 4 Sessions did not read ${4 * PER_SESSION} MiB of answers`);
    assert.equal((await client('alice').stat(theirs, '/etc/secret')).size, 7, 'another identity is served meanwhile');
    const got = await Promise.all(
      sessions.map(
        (s) =>
          new Promise<number[]>((resolve) => {
            const ids: number[] = [];
            s.on('data', (b: Buffer) => {
              const res = SessionResponse.decode(b);
              assert.equal(res.response?.$case === 'read' && res.response.read.data.length, MiB);
              ids.push(res.id);
              if (ids.length === PER_SESSION) resolve(ids.sort((a, b) => a - b));
            });
            s.resume();
          }),
      ),
    );
    for (const ids of got) assert.deepEqual(ids, Array.from({ length: PER_SESSION }, (_, i) => i), 'every request answered once');
    for (const s of sessions) s.end();
  });

  test('thousands of streams from one identity over several connections: at most --max-streams-per-identity open, the rest RESOURCE_EXHAUSTED; others are served', async () => {
    // The layer's listings in the cache first, so that what is measured is what the open streams hold.
    await drain(client('mallory').walk(mine, '/'));
    const before = mb(resolver);
    const conns = Array.from({ length: 4 }, () => raw('mallory'));
    const calls: ClientReadableStream<Buffer>[] = [];
    const codes = new Map<number, number>();
    const refusals: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const call = rawWalk(conns[i % conns.length], mine.id, '/');
      // Never read: each open Walk holds what it has produced.
      call.pause();
      call.on('error', (e: { code: number; details: string }) => {
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
        if (e.code === status.RESOURCE_EXHAUSTED && refusals.length < 1) refusals.push(e.details);
      });
      calls.push(call);
    }
    // A connection whose own streams hold the identity's slots queues the rest of its calls behind them (HTTP/2's limit per connection); the others' calls are refused.
    let seen = -1;
    await waitFor(
      'the refusals to settle',
      async () => {
        const now = codes.get(status.RESOURCE_EXHAUSTED) ?? 0;
        if (now > 0 && now === seen) return true;
        seen = now;
        await sleep(500);
        return undefined;
      },
      30_000,
    );
    assert.ok(seen >= 1000, `${seen} of 2000 calls refused`);
    assert.equal((await client('alice').stat(theirs, '/etc/secret')).size, 7, 'another identity is served meanwhile');
    const held = mb(resolver) - before;
    // Cancelled before the checks: a failed one must not leave this identity's calls open for the tests after it.
    for (const call of calls) call.cancel();
    // Node 24's collector lets the heap grow further before it collects than Node 20's (240 MiB seen): the bound
    // is far below what unbounded streams held (over a gigabyte).
    assert.ok(held < 350, `the resolver grew by ${held.toFixed(0)} MiB`);
    assert.match(refusals[0], /has 8 calls open, the most one identity may \(--max-streams-per-identity\)/);
    assert.deepEqual([...codes.keys()], [status.RESOURCE_EXHAUSTED], 'no other failure than the refusal');
    // One warning per burst, not one per refused call.
    assert.ok(resolver.logs.filter((l) => l.event === 'rpc.limited').length <= 3);
    // Once its streams are gone, the identity is served again.
    await waitFor('mallory served again', () => client('mallory').stat(mine, '/etc/hostname').then(() => true, () => undefined), 10_000);
  });

  test('thousands of streams without an identity (plaintext): bounded per connection, others are served', async () => {
    await drain(client('alice', plain).walk(mine, '/'));
    const before = mb(plain);
    const conn = raw(undefined, plain);
    const calls = Array.from({ length: 1000 }, () => {
      const call = rawWalk(conn, mine.id, '/');
      call.pause();
      call.on('error', () => undefined);
      return call;
    });
    await sleep(2_000);
    assert.equal((await client('alice', plain).stat(theirs, '/etc/secret')).size, 7, 'another connection is served meanwhile');
    const held = mb(plain) - before;
    for (const call of calls) call.cancel();
    // Unbounded, 1000 open Walks of a 17,000-entry layer held over a gigabyte here. Node 24's collector lets the
    // heap (and so RSS) grow further before it collects than Node 20's: 150–250 MiB measured there, hence the margin.
    assert.ok(held < 350, `the resolver grew by ${held.toFixed(0)} MiB`);
  });

  test('"..", NUL, relative and empty paths are refused; empty and "." components are the canonical path; symlinks never lead out of the layer', async () => {
    const m = client('mallory');
    const session = m.session();
    closers.push(() => session.close());
    const want = await m.stat(mine, '/etc/hostname');
    for (const p of ['/etc//hostname', '//etc/./hostname', '/./etc/hostname', '/etc/hostname/.']) {
      assert.deepEqual(await m.stat(mine, p), want, p);
      const a = await session.request({ $case: 'stat', stat: { layer: { ref: { $case: 'id', id: mine.id } }, path: Buffer.from(p) } });
      assert.deepEqual(a.$case === 'stat' && a.stat.attr, want, `Session ${p}`);
    }
    const bad: (string | Buffer)[] = ['/..', '/etc/..', '/etc/../../etc/hostname', '/../theirs', Buffer.from('/etc/host\0name'), Buffer.from('/\0'), 'etc/hostname', '', '..'];
    for (const p of bad) {
      expectStatus(await failure(m.stat(mine, p)), status.INVALID_ARGUMENT, Errno.EINVAL);
      expectStatus(await failure(m.readDirPage(mine, p)), status.INVALID_ARGUMENT, Errno.EINVAL);
      expectStatus(await failure(drain(m.read(mine, p))), status.INVALID_ARGUMENT, Errno.EINVAL);
      expectStatus(await failure(drain(m.walk(mine, p))), status.INVALID_ARGUMENT, Errno.EINVAL);
      // An empty Diff path is the documented default, the root.
      if (p !== '') expectStatus(await failure(drain(m.diff(mine, mine, p))), status.INVALID_ARGUMENT, Errno.EINVAL);
      expectStatus(await failure(session.request({ $case: 'stat', stat: { layer: { ref: { $case: 'id', id: mine.id } }, path: Buffer.from(p) } })), status.INVALID_ARGUMENT, Errno.EINVAL);
    }
    // Symlinks in the middle of a path resolve inside the layer, as a chroot would: one pointing up and out stops at the layer's root, and the host's files are never reached.
    assert.deepEqual(await m.readLink(mine, '/up'), Buffer.from('../../../../../../..'));
    assert.ok(fs.existsSync('/etc/passwd'), 'the host has the file the layer must not lead to');
    expectStatus(await failure(m.stat(mine, '/up/etc/passwd')), status.NOT_FOUND, Errno.ENOENT);
    expectStatus(await failure(m.stat(mine, '/etc/root/etc/passwd')), status.NOT_FOUND, Errno.ENOENT);
    expectStatus(await failure(drain(m.read(mine, '/up/etc/passwd'))), status.NOT_FOUND, Errno.ENOENT);
    assert.deepEqual(await m.stat(mine, '/etc/root/etc/hostname'), want, "an absolute link is the layer's own root");
    assert.deepEqual(await m.readFile(mine, '/up/etc/hostname'), Buffer.from('mine\n'));
    expectStatus(await failure(m.stat(mine, '/loop/x')), status.INVALID_ARGUMENT, Errno.ELOOP);
    expectStatus(await failure(m.readDirPage(mine, '/up')), status.INVALID_ARGUMENT, Errno.ENOTDIR);
    expectStatus(await failure(drain(m.read(mine, '/etc/root'))), status.INVALID_ARGUMENT, Errno.EINVAL);
    const walked = (await collect(m.walk(mine, '/'))).flat().map((e) => e.path.toString());
    assert.ok(walked.includes('/up') && !walked.some((p) => p.startsWith('/up/') || p.startsWith('/etc/root/')), 'a walk does not descend into links');
  });

  test('a layer that is not one\'s own gets the same PERMISSION_DENIED as a layer that does not exist, on every call', async () => {
    const m = client('mallory');
    const session = m.session();
    closers.push(() => session.close());
    const missing = { id: 987_654 };
    const calls: [string, (ref: LayerRef) => Promise<unknown>][] = [
      ['stat', (ref) => m.stat(ref, '/etc/secret')],
      ['readDir', (ref) => m.readDirPage(ref, '/etc')],
      ['read', (ref) => drain(m.read(ref, '/etc/secret'))],
      ['readLink', (ref) => m.readLink(ref, '/etc/secret')],
      ['listXattr', (ref) => m.listXattr(ref, '/etc/secret')],
      ['getXattr', (ref) => m.getXattr(ref, '/etc/secret', 'user.x')],
      ['statFs', (ref) => m.statFs(ref)],
      ['walk', (ref) => drain(m.walk(ref, '/'))],
      ['diff to', (ref) => drain(m.diff(mine, ref, '/'))],
      ['diff from', (ref) => drain(m.diff(ref, mine, '/'))],
      ['getLayer', (ref) => m.getLayer(ref)],
      ['updateLayer', (ref) => m.updateLayer(ref, { name: 'mine-now' })],
      ['deleteLayer', (ref) => m.deleteLayer(ref)],
      ['Session stat', (ref) => session.request({ $case: 'stat', stat: { layer: { ref: 'id' in ref ? { $case: 'id', id: ref.id } : { $case: 'name', name: ref.name } }, path: Buffer.from('/etc/secret') } })],
      ['Session read', (ref) => session.request({ $case: 'read', read: { layer: { ref: 'id' in ref ? { $case: 'id', id: ref.id } : { $case: 'name', name: ref.name } }, path: Buffer.from('/etc/secret'), offset: 0, length: 10 } })],
    ];
    const refText = (ref: LayerRef): string => ('id' in ref ? String(ref.id) : ref.name);
    for (const [what, call] of calls) {
      for (const [hidden, absent] of [
        [theirs, missing],
        [{ name: 'theirs' }, { name: 'no-such-layer' }],
      ] as [LayerRef, LayerRef][]) {
        const a = await failure(call(hidden));
        const b = await failure(call(absent));
        for (const e of [a, b]) {
          assert.equal(e.code, GrpcCode.PERMISSION_DENIED, `${what}: ${e.message}`);
          assert.equal(e.errno, Errno.EACCES, `${what}: ${e.message}`);
        }
        assert.equal(a.message.replace(refText(hidden), 'LAYER'), b.message.replace(refText(absent), 'LAYER'), `${what}: the answers tell the layers apart`);
      }
    }
    assert.deepEqual(
      (await m.listLayers()).map((l) => l.layerId),
      [mine.id],
      'only its own layer is listed',
    );
    // Still nothing of the other layer's content reached mallory, and its own layer still reads.
    assert.equal((await m.stat(mine, '/etc/hostname')).size, 5);
  });

  test('huge offsets and lengths in Read: empty at end of file, capped answers, never an allocation of what was asked', async () => {
    const m = client('mallory');
    const session = m.session();
    closers.push(() => session.close());
    const read = async (offset: number, length: number): Promise<{ data: Buffer; eof: boolean }> => {
      const a = await session.request({ $case: 'read', read: { layer: { ref: { $case: 'id', id: mine.id } }, path: Buffer.from('/big'), offset, length } });
      assert.equal(a.$case, 'read');
      return a.$case === 'read' ? a.read : { data: Buffer.alloc(0), eof: false };
    };
    for (const [offset, length] of [
      [Number.MAX_SAFE_INTEGER, 1],
      [2 ** 52, 2 ** 52],
      [BIG, Number.MAX_SAFE_INTEGER],
    ]) {
      const r = await read(offset, length);
      assert.deepEqual([r.data.length, r.eof], [0, true], `offset ${offset} length ${length}`);
    }
    // A length beyond what one Session answer carries is a short read, as read(2) may give.
    const r = await read(0, 2 ** 40);
    assert.deepEqual([r.data.length, r.eof], [MiB, false]);
    const r0 = await read(BIG - 10, 0);
    assert.deepEqual([r0.data.length, r0.eof], [10, true]);
    // The unary Read streams a huge range in chunks of at most 1 MiB, and stops at end of file.
    let total = 0;
    for await (const chunk of m.read(mine, '/big', BIG - 3 * MiB - 5, 2 ** 50)) {
      assert.ok(chunk.length <= MiB);
      total += chunk.length;
    }
    assert.equal(total, 3 * MiB + 5);
    await drain(m.read(mine, '/big', 2 ** 52, 2 ** 52));
    // Past 2^53 (a uint64 as another language sends it): refused, not rounded.
    const w = new BinaryWriter();
    w.tag(1, 2).fork().tag(1, 0).uint64(mine.id).join();
    w.tag(2, 2).bytes(Buffer.from('/big')).tag(3, 0).uint64(2n ** 63n).tag(4, 0).uint64(2n ** 64n - 1n);
    const call = raw('mallory').makeServerStreamRequest('/strata.v1.ProjectionService/Read', id, id, Buffer.from(w.finish()), new Metadata());
    call.on('data', () => undefined);
    assert.equal((await ended(call)).code, status.INVALID_ARGUMENT);
  });

  test('ReadDir limit 0 is the default page, a huge limit is capped; paging covers the listing exactly', async () => {
    const m = client('mallory');
    const session = m.session();
    closers.push(() => session.close());
    const page0 = await m.readDirPage(mine, '/wide', 0, 0);
    assert.deepEqual([page0.entries.length, page0.eof], [1024, false]);
    const huge = await m.readDirPage(mine, '/wide', 0, 2 ** 32 - 1);
    assert.deepEqual([huge.entries.length, huge.eof], [16384, false]);
    const rest = await m.readDirPage(mine, '/wide', 16384, 2 ** 32 - 1);
    assert.deepEqual([rest.entries.length, rest.eof], [WIDE - 16384, true]);
    const names = new Set([...huge.entries, ...rest.entries].map((e) => e.name.toString()));
    assert.equal(names.size, WIDE);
    const a = await session.request({ $case: 'readDir', readDir: { layer: { ref: { $case: 'id', id: mine.id } }, path: Buffer.from('/wide'), offset: 0, limit: 2 ** 32 - 1 } });
    assert.equal(a.$case === 'readDir' && a.readDir.entries.length, 16384);
    const end = await session.request({ $case: 'readDir', readDir: { layer: { ref: { $case: 'id', id: mine.id } }, path: Buffer.from('/wide'), offset: Number.MAX_SAFE_INTEGER, limit: 0 } });
    assert.deepEqual(end.$case === 'readDir' && [end.readDir.entries.length, end.readDir.eof], [0, true]);
  });

  test('after all of it both resolvers still serve, and logged no internal error', async () => {
    // Asked until answered (bounded): on a loaded machine the cancellations of the floods above may still be keeping a resolver busy.
    const serves = (r: ResolverProcess): Promise<boolean> =>
      waitFor('an answer', () => client('alice', r).stat(mine, '/etc/hostname').then((a) => a.size === 5, () => undefined), 60_000);
    assert.equal(await serves(resolver), true);
    assert.equal(await serves(plain), true);
    for (const r of [resolver, plain]) {
      assert.equal(r.child.exitCode, null);
      assert.deepEqual(r.logs.filter((l) => l.event === 'rpc.internal' || l.level === 'error' || l.level === 'fatal'), []);
    }
  });
});
