import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { GrpcCode, StrataError } from '@strata/errors';
import { SessionServiceService, type SessionRequest, type SessionResponse } from '@strata/protocol';
import { EndpointPool } from './endpoints';
import { SessionClient, type SessionAnswer, type SessionPayload } from './session-client';

type Call = ServerDuplexStream<SessionRequest, SessionResponse>;

/** An in-process Session server on 127.0.0.1 (port 0) whose behaviour each test scripts. */
async function sessionServer(onCall: (call: Call) => void): Promise<{ address: string; server: Server }> {
  const server = new Server();
  server.addService(SessionServiceService, { session: onCall });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, server };
}

const servers: Server[] = [];
const pools: EndpointPool[] = [];
after(() => {
  for (const p of pools) p.close();
  for (const s of servers) s.forceShutdown();
});

async function start(onCall: (call: Call) => void): Promise<string> {
  const { address, server } = await sessionServer(onCall);
  servers.push(server);
  return address;
}

function poolOf(...addresses: string[]): EndpointPool {
  const p = new EndpointPool(addresses);
  pools.push(p);
  return p;
}

const readLink = (path: string): SessionPayload => ({ $case: 'readLink', readLink: { layer: { ref: { $case: 'id', id: 1 } }, path: Buffer.from(path) } });
const echo = (req: SessionRequest): SessionResponse => ({
  id: req.id,
  response: { $case: 'readLink', readLink: { target: req.request?.$case === 'readLink' ? req.request.readLink.path : Buffer.alloc(0) } },
});
const targetOf = (a: SessionAnswer): string => (a.$case === 'readLink' ? a.readLink.target.toString() : `<${a.$case}>`);

describe('Session flow control as the client sees it', () => {
  test('a resolver that stops reading while it works (at most 8 requests at once) still answers every request once, out of order', async () => {
    const HOLD = 8;
    let maxHeld = 0;
    const seen: number[] = [];
    const address = await start((call) => {
      const held: SessionRequest[] = [];
      call.on('data', (req: SessionRequest) => {
        seen.push(req.id);
        held.push(req);
        maxHeld = Math.max(maxHeld, held.length);
        if (held.length < HOLD) return;
        // Full: read nothing more until these are answered, newest first.
        call.pause();
        setImmediate(() => {
          for (const r of held.splice(0).reverse()) call.write(echo(r));
          call.resume();
        });
      });
      call.on('end', () => call.end());
    });
    const s = new SessionClient({ pool: poolOf(address) });
    const N = 400;
    const answers = Array.from({ length: N }, (_, i) => s.request(readLink(`/f${i}`)));
    assert.equal(s.inflight, N, 'every request is in flight at once from the client side');
    const got = await Promise.all(answers);
    assert.deepEqual(got.map(targetOf), Array.from({ length: N }, (_, i) => `/f${i}`));
    assert.ok(maxHeld <= HOLD, `the server held ${maxHeld}`);
    assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i + 1), 'each request reached the server exactly once');
    assert.equal(s.inflight, 0);
    s.close();
  });

  test('a resolver that never reads again: requests fail at their deadline, not before, and nothing stays in flight', async () => {
    const address = await start((call) => call.pause());
    const s = new SessionClient({ pool: poolOf(address), deadlineMs: 300 });
    const t0 = Date.now();
    const errs = await Promise.all(Array.from({ length: 20 }, (_, i) => s.request(readLink(`/f${i}`)).then(() => undefined, (e: unknown) => e)));
    const waited = Date.now() - t0;
    for (const e of errs) assert.ok(e instanceof StrataError && e.code === GrpcCode.DEADLINE_EXCEEDED);
    // Timers fire no earlier than asked; the upper bound only guards against a hang.
    assert.ok(waited >= 300 && waited < 5_000, `failed after ${waited} ms`);
    assert.equal(s.inflight, 0);
    s.close();
  });
});

describe('Session failover over real streams', () => {
  test('a resolver that drains (answers some, ends the stream) hands the rest to the next one', async () => {
    const seenByB: number[] = [];
    const a = await start((call) => {
      let n = 0;
      call.on('data', (req: SessionRequest) => {
        if (++n <= 5) call.write(echo(req));
        if (n === 10) call.end(); // 5 answered, 5 left unanswered
      });
    });
    const b = await start((call) => {
      call.on('data', (req: SessionRequest) => {
        seenByB.push(req.id);
        call.write(echo(req));
      });
      call.on('end', () => call.end());
    });
    const s = new SessionClient({ pool: poolOf(a, b) });
    const got = await Promise.all(Array.from({ length: 10 }, (_, i) => s.request(readLink(`/f${i}`))));
    assert.deepEqual(got.map(targetOf), Array.from({ length: 10 }, (_, i) => `/f${i}`));
    assert.deepEqual(seenByB.sort((x, y) => x - y), [6, 7, 8, 9, 10], 'only the unanswered ones were sent again');
    s.close();
  });

  test('a resolver forced down with requests in progress: they are answered by the next one', async () => {
    let arrivedAtA!: () => void;
    const allAtA = new Promise<void>((r) => (arrivedAtA = r));
    const { address: a, server: serverA } = await sessionServer((call) => {
      let n = 0;
      call.on('data', () => {
        if (++n === 10) arrivedAtA();
      });
    });
    servers.push(serverA);
    const b = await start((call) => {
      call.on('data', (req: SessionRequest) => call.write(echo(req)));
      call.on('end', () => call.end());
    });
    const s = new SessionClient({ pool: poolOf(a, b) });
    const answers = Array.from({ length: 10 }, (_, i) => s.request(readLink(`/f${i}`)));
    await allAtA;
    serverA.forceShutdown();
    const got = await Promise.all(answers);
    assert.deepEqual(got.map(targetOf), Array.from({ length: 10 }, (_, i) => `/f${i}`));
    s.close();
  });
});
