import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata, Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { SessionServiceService, type SessionRequest, type SessionResponse } from '@strata/protocol';
import { EndpointPool, type EndpointChange } from './endpoints';
import type { LookedUp, LookupAll } from './name-expansion';
import { SessionGroup } from './session-group';
import type { SessionPayload } from './session-client';

type Call = ServerDuplexStream<SessionRequest, SessionResponse>;

/** A lookup whose answer the test changes; counts the lookups. */
class FakeDns {
  answers = new Map<string, string[]>();
  failing = false;
  count = 0;
  readonly lookup: LookupAll = async (host) => {
    this.count++;
    const a = this.answers.get(host);
    if (this.failing || !a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return a.map((address): LookedUp => ({ address, family: 4 }));
  };
}

const pools: EndpointPool[] = [];
const groups: SessionGroup[] = [];
const servers: Server[] = [];
after(() => {
  for (const g of groups) g.close();
  for (const p of pools) p.close();
  for (const s of servers) s.forceShutdown();
});

function poolOf(given: string, dns: FakeDns, changes: EndpointChange[] = [], refreshMs = 0): EndpointPool {
  const p = new EndpointPool(given, undefined, { lookup: dns.lookup, refreshMs, retireGraceMs: 50, onChange: (c) => changes.push(c) });
  pools.push(p);
  return p;
}

async function waitUntil(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('EndpointPool: a name stands for every address it resolves to', () => {
  test('before the first lookup the name itself; after it one endpoint per address, pinned to the name', async () => {
    const dns = new FakeDns();
    dns.answers.set('r.test', ['10.9.0.1', '10.9.0.2']);
    const changes: EndpointChange[] = [];
    const p = poolOf('r.test:7400,10.9.0.9:7400', dns, changes);
    assert.deepEqual(p.endpoints.map((e) => e.address), ['r.test:7400', '10.9.0.9:7400']);
    await p.ready();
    assert.deepEqual(p.endpoints.map((e) => e.address), ['10.9.0.9:7400', 'r.test (10.9.0.1:7400)', 'r.test (10.9.0.2:7400)']);
    assert.deepEqual(p.endpoints.map((e) => e.dial), ['10.9.0.9:7400', '10.9.0.1:7400', '10.9.0.2:7400']);
    assert.equal(changes.length, 1);
    assert.deepEqual({ ...changes[0] }, {
      given: ['r.test:7400', '10.9.0.9:7400'],
      addresses: ['10.9.0.9:7400', 'r.test (10.9.0.1:7400)', 'r.test (10.9.0.2:7400)'],
      added: ['r.test (10.9.0.1:7400)', 'r.test (10.9.0.2:7400)'],
      removed: ['r.test:7400'],
      failed: [],
      initial: true,
    });
  });

  test('IP literals only: nothing is looked up, ready at once', async () => {
    const dns = new FakeDns();
    const p = poolOf('10.9.0.1:1,10.9.0.2:1,10.9.0.1:1', dns);
    await p.ready();
    assert.equal(dns.count, 0);
    assert.deepEqual(p.endpoints.map((e) => e.address), ['10.9.0.1:1', '10.9.0.2:1']);
  });

  test('looked up again: added addresses used, vanished ones dropped, kept endpoints the same objects; each change reported once', async () => {
    const dns = new FakeDns();
    dns.answers.set('r.test', ['10.9.0.1', '10.9.0.2']);
    const changes: EndpointChange[] = [];
    const p = poolOf('r.test:7400', dns, changes);
    await p.ready();
    let told = 0;
    p.subscribe(() => told++);
    const kept = p.endpoints[1];
    dns.answers.set('r.test', ['10.9.0.3', '10.9.0.2']);
    await p.refresh();
    assert.deepEqual(p.endpoints.map((e) => e.address), ['r.test (10.9.0.2:7400)', 'r.test (10.9.0.3:7400)']);
    assert.equal(p.endpoints[0], kept);
    assert.equal(told, 1);
    assert.deepEqual([changes[1].added, changes[1].removed, changes[1].initial], [['r.test (10.9.0.3:7400)'], ['r.test (10.9.0.1:7400)'], false]);
    // The same set in another order (round-robin DNS) is no change.
    dns.answers.set('r.test', ['10.9.0.3', '10.9.0.2']);
    await p.refresh();
    assert.equal(told, 1);
    assert.equal(changes.length, 2);
  });

  test('a lookup that fails after one that answered keeps the addresses (a DNS hiccup is not every pod gone); one that never answered keeps the name', async () => {
    const dns = new FakeDns();
    dns.answers.set('r.test', ['10.9.0.1', '10.9.0.2']);
    const p = poolOf('r.test:7400', dns);
    await p.ready();
    dns.failing = true;
    await p.refresh();
    assert.equal(p.endpoints.length, 2);
    const changes: EndpointChange[] = [];
    const q = poolOf('gone.test:7400', dns, changes);
    await q.ready();
    assert.deepEqual(q.endpoints.map((e) => e.address), ['gone.test:7400']);
    assert.match(changes[0].failed[0], /cannot resolve host gone\.test \(resolver address gone\.test:7400\): ENOTFOUND/);
  });

  test('looked up every refreshMs, and again (at most once a second) when every endpoint is failing; close stops it', async () => {
    const dns = new FakeDns();
    dns.answers.set('r.test', ['10.9.0.1', '10.9.0.2']);
    const p = poolOf('r.test:7400', dns, [], 20);
    await waitUntil('three lookups', () => dns.count >= 3);
    p.close();
    const n = dns.count;
    await new Promise((r) => setTimeout(r, 80));
    assert.ok(dns.count <= n + 1, 'no lookups after close');

    // Nothing listens on port 1 of these: both channels end up failing; pick() then looks the name up again.
    const dns2 = new FakeDns();
    dns2.answers.set('dead.test', ['127.0.0.2', '127.0.0.3']);
    const q = poolOf('dead.test:1', dns2);
    await q.ready();
    for (const e of q.endpoints) e.channel.getConnectivityState(true);
    await waitUntil('both failing', () => q.endpoints.every((e) => e.failing));
    const before = dns2.count;
    q.pick();
    q.pick();
    await waitUntil('a lookup after the failure of all', () => dns2.count === before + 1);

    // A Session stream that finds every endpoint failing says so too.
    const dns3 = new FakeDns();
    dns3.answers.set('dead.test', ['127.0.0.2', '127.0.0.3']);
    const r = poolOf('dead.test:1', dns3);
    await r.ready();
    for (const e of r.endpoints) e.channel.getConnectivityState(true);
    await waitUntil('both failing', () => r.endpoints.every((e) => e.failing));
    const g = new SessionGroup(r, { deadlineMs: 200 });
    groups.push(g);
    const looked = dns3.count;
    await assert.rejects(g.request({ $case: 'readLink', readLink: { layer: { ref: { $case: 'id', id: 1 } }, path: Buffer.from('/') } }));
    await waitUntil('a lookup after a stream found all failing', () => dns3.count > looked);
  });
});

/** An in-process Session server on `host` (port given or any) answering readLink with "<name>:<path>"; counts the streams and requests it saw. */
interface EchoServer {
  port: number;
  requests: number;
  streams: number;
  authorities: Set<string>;
  hold: boolean;
  held: (() => void)[];
  /** Gone at once, its streams broken (a pod killed). */
  kill(): void;
}

async function echoServer(name: string, host: string, port = 0): Promise<EchoServer> {
  const server = new Server();
  const state: EchoServer = { port: 0, requests: 0, streams: 0, authorities: new Set<string>(), hold: false, held: [], kill: () => server.forceShutdown() };
  server.addService(SessionServiceService, {
    session: (call: Call) => {
      state.streams++;
      state.authorities.add(call.getHost());
      call.sendMetadata(new Metadata());
      call.on('data', (req: SessionRequest) => {
        state.requests++;
        const path = req.request?.$case === 'readLink' ? req.request.readLink.path.toString() : '';
        const answer = (): void => {
          call.write({ id: req.id, response: { $case: 'readLink', readLink: { target: Buffer.from(`${name}:${path}`) } } });
        };
        if (state.hold) state.held.push(answer);
        else answer();
      });
      call.on('end', () => call.end());
    },
  });
  state.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  servers.push(server);
  return state;
}

/** Two servers on one port number, at 127.0.0.2 and 127.0.0.3 (a port taken on the second is tried again). */
async function twoServers(): Promise<[EchoServer, EchoServer]> {
  for (let attempt = 0; ; attempt++) {
    const a = await echoServer('a', '127.0.0.2');
    try {
      return [a, await echoServer('b', '127.0.0.3', a.port)];
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
}

const readLink = (path: string): SessionPayload => ({ $case: 'readLink', readLink: { layer: { ref: { $case: 'id', id: 1 } }, path: Buffer.from(path) } });
const whoAnswered = (a: Awaited<ReturnType<SessionGroup['request']>>): string => (a.$case === 'readLink' ? a.readLink.target.toString().split(':')[0] : '?');

describe('SessionGroup over a pool whose name is looked up again', () => {
  test('one session per address of the name, each server reached as the name; a vanished address drained, an added one used', async () => {
    const [a, b] = await twoServers();
    const dns = new FakeDns();
    dns.answers.set('r.test', ['127.0.0.2', '127.0.0.3']);
    const p = poolOf(`r.test:${a.port}`, dns);
    await p.ready();
    const events: string[] = [];
    const g = new SessionGroup(p, { deadlineMs: 5_000, onEvent: (e) => events.push(`${e.type} ${e.address}`) });
    groups.push(g);
    assert.equal(g.size, 2);
    const first = await Promise.all(Array.from({ length: 20 }, (_, i) => g.request(readLink(`/f${i}`))));
    assert.deepEqual(first.map(whoAnswered).sort(), [...Array(10).fill('a'), ...Array(10).fill('b')], 'dealt evenly over both');
    assert.deepEqual([...a.authorities, ...b.authorities], [`r.test:${a.port}`, `r.test:${a.port}`], ':authority is the name');
    assert.ok(events.includes(`connected 127.0.0.2:${a.port}`) && events.includes(`connected 127.0.0.3:${a.port}`), `events name the address dialled: ${events.join(', ')}`);

    // 127.0.0.2 leaves the name while a request is in flight on it: that one is still answered, then its session closes.
    a.hold = true;
    const pending = [g.request(readLink('/x')), g.request(readLink('/y'))];
    await waitUntil('the held request', () => a.held.length === 1);
    dns.answers.set('r.test', ['127.0.0.3']);
    // One address left: the name itself (grpc-js resolves it), which the fake cannot; give it two again, b's and a third.
    const c = await echoServer('c', '127.0.0.4', a.port).catch(() => undefined);
    dns.answers.set('r.test', c ? ['127.0.0.3', '127.0.0.4'] : ['127.0.0.3', '127.0.0.5']);
    await p.refresh();
    assert.equal(g.size, 2);
    assert.equal(g.inflight, 1, 'the held request is still in flight on the retired session');
    a.held.splice(0).forEach((answer) => answer());
    assert.deepEqual((await Promise.all(pending)).map(whoAnswered).sort(), ['a', 'b']);
    await waitUntil('the retired stream to end', () => g.inflight === 0);
    const aRequests = a.requests;
    const later = await Promise.all(Array.from({ length: 20 }, (_, i) => g.request(readLink(`/g${i}`))));
    assert.equal(a.requests, aRequests, 'nothing more reaches the address that went');
    const by = later.map(whoAnswered);
    assert.ok(by.includes('b'));
    if (c) assert.ok(by.includes('c'), `the added address serves: ${by.join('')}`);
  });

  test('a session whose stream moved to an address that then went is replaced by a fresh one on its own address', async () => {
    const [a, b] = await twoServers();
    const dns = new FakeDns();
    dns.answers.set('r.test', ['127.0.0.2', '127.0.0.3']);
    const p = poolOf(`r.test:${a.port}`, dns);
    await p.ready();
    const g = new SessionGroup(p, { deadlineMs: 5_000 });
    groups.push(g);
    await Promise.all(Array.from({ length: 4 }, (_, i) => g.request(readLink(`/f${i}`))));
    assert.ok(a.streams === 1 && b.streams === 1, 'a stream on each');
    // b's pod dies: its session moves to a and stays there.
    b.kill();
    const moved = await Promise.all(Array.from({ length: 6 }, (_, i) => g.request(readLink(`/m${i}`))));
    assert.deepEqual(new Set(moved.map(whoAnswered)), new Set(['a']));
    assert.equal(a.streams, 2, "b's session reopened on a");
    // b comes back at its address, a leaves the name, and c joins it.
    const b2 = await echoServer('b', '127.0.0.3', a.port);
    const c = await echoServer('c', '127.0.0.4', a.port).catch(() => undefined);
    if (!c) return; // 127.0.0.4 of that port taken by someone else: the rest cannot be shown here
    dns.answers.set('r.test', ['127.0.0.3', '127.0.0.4']);
    await p.refresh();
    await waitUntil('both sessions on a retired', () => g.inflight === 0);
    const aRequests = a.requests;
    const after = await Promise.all(Array.from({ length: 20 }, (_, i) => g.request(readLink(`/n${i}`))));
    assert.equal(a.requests, aRequests, 'nothing more on the address that went, not even from the session that had moved there');
    assert.deepEqual(new Set(after.map(whoAnswered)), new Set(['b', 'c']));
    assert.equal(g.size, 2);
    assert.ok(b2.streams >= 1 && c.streams >= 1);
  });
});
