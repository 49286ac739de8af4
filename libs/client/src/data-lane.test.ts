import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer } from 'node:tls';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { DATA_MAGIC, DATA_PORT_HEADER, ErrorInfo, SessionRequest, answerHeader, errorInfoOf, type ReadRequest, type SessionResponse } from '@strata/protocol';
import { DataLane, dataPortOf, type DataLaneEvents } from './data-lane';
import { FakeClock } from './fake-clock';
import { FIRST_LANE_RETRY_MS, SessionClient, type DataLaneHandle, type SessionAnswer, type SessionEndpoint, type SessionPayload, type SessionStream } from './session-client';

/** A scripted data stream server: parses the client's frames and hands each request to `onRequest`. */
async function scriptedServer(
  onRequest: (socket: Socket, req: SessionRequest) => void,
  tls?: { cert: Buffer; key: Buffer },
): Promise<{ server: Server; port: number; greeted: Buffer[] }> {
  const greeted: Buffer[] = [];
  const serve = (socket: Socket): void => {
    let held = Buffer.alloc(0);
    let magic = false;
    socket.on('data', (d: Buffer) => {
      held = Buffer.concat([held, d]);
      if (!magic && held.length >= DATA_MAGIC.length) {
        greeted.push(held.subarray(0, DATA_MAGIC.length));
        held = held.subarray(DATA_MAGIC.length);
        magic = true;
      }
      while (magic && held.length >= 4 && held.length >= 4 + held.readUInt32LE(0)) {
        const n = held.readUInt32LE(0);
        onRequest(socket, SessionRequest.decode(held.subarray(4, 4 + n)));
        held = held.subarray(4 + n);
      }
    });
    socket.on('error', () => undefined);
  };
  const server: Server = tls ? createTlsServer(tls, serve) : createServer(serve);
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
  return { server, port, greeted };
}

/** A lane's events as promises and a log. */
function recorder(): { events: DataLaneEvents; ready: Promise<void>; broken: Promise<StrataError>; answers: Map<number, SessionAnswer | StrataError>; answered: (n: number) => Promise<void> } {
  let onReady!: () => void;
  let onBroken!: (e: StrataError) => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const broken = new Promise<StrataError>((r) => (onBroken = r));
  const answers = new Map<number, SessionAnswer | StrataError>();
  const waiters: { n: number; resolve: () => void }[] = [];
  return {
    events: {
      ready: onReady,
      broken: onBroken,
      answer: (id, a) => {
        answers.set(id, a);
        for (const w of waiters) if (answers.size >= w.n) w.resolve();
      },
    },
    ready,
    broken,
    answers,
    answered: (n) => (answers.size >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

const read = (offset: number, length: number): ReadRequest => ({ layer: { ref: { $case: 'name', name: 'l' } }, path: Buffer.from('/f'), offset, length });

describe('DataLane', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  test('reads answers split anywhere into buffers of their own; errors come back as StrataErrors', async () => {
    const sent = new Map<number, Buffer>();
    const { server, port, greeted } = await scriptedServer((socket, req) => {
      assert.equal(req.request?.$case, 'read');
      const r = req.request.$case === 'read' ? req.request.read : read(0, 0);
      if (req.id === 3) {
        const info = Buffer.from(ErrorInfo.encode(errorInfoOf(new StrataError(Errno.ENOENT, 'no such file', { code: GrpcCode.NOT_FOUND, path: Buffer.from('/f') }))).finish());
        socket.write(Buffer.concat([answerHeader(3, r.offset, 1, false, info.length), info]));
        return;
      }
      const data = randomBytes(req.id === 2 ? 100 : r.length);
      sent.set(req.id, data);
      const frame = Buffer.concat([answerHeader(req.id, r.offset, 0, req.id === 2, data.length), data]);
      // Dribbled in pieces that cut the header and the data anywhere.
      let at = 0;
      const step = (): void => {
        if (at >= frame.length) return;
        const n = 1 + Math.floor(Math.random() * 70_000);
        socket.write(frame.subarray(at, at + n));
        at += n;
        setImmediate(step);
      };
      step();
    });
    servers.push(server);
    const r = recorder();
    const lane = new DataLane('127.0.0.1', port, r.events);
    await r.ready;
    lane.send(1, read(2 ** 33 + 4096, 1 << 20), {});
    await r.answered(1);
    lane.send(2, read(8192, 4096), { traceparent: 'x' });
    await r.answered(2);
    lane.send(3, read(0, 4096), {});
    await r.answered(3);
    assert.ok(greeted[0].equals(DATA_MAGIC));
    const a1 = r.answers.get(1);
    assert.ok(a1 && !(a1 instanceof StrataError) && a1.$case === 'read');
    assert.ok(a1.read.data.equals(sent.get(1)!));
    assert.equal(a1.read.offset, 2 ** 33 + 4096);
    assert.equal(a1.read.eof, false);
    assert.equal(a1.read.data.buffer.byteLength, 1 << 20, 'the answer has a buffer of its own');
    const a2 = r.answers.get(2);
    assert.ok(a2 && !(a2 instanceof StrataError) && a2.$case === 'read');
    assert.ok(a2.read.data.equals(sent.get(2)!));
    assert.equal(a2.read.eof, true);
    const a3 = r.answers.get(3);
    assert.ok(a3 instanceof StrataError);
    assert.equal(a3.errno, Errno.ENOENT);
    assert.equal(lane.inflight, 0);
    lane.close();
  });

  test('many answers in one write, the last one cut short: each arrives whole in a buffer of its own, in order', async () => {
    const sent = new Map<number, Buffer>();
    let frames: Buffer[] = [];
    const { server, port } = await scriptedServer((socket, req) => {
      const r = req.request?.$case === 'read' ? req.request.read : read(0, 0);
      // Small answers, an empty one, one larger than the client's staging buffer: all in one write.
      const data = randomBytes(req.id === 7 ? 0 : req.id === 9 ? r.length : 1 + ((req.id * 997) % 6000));
      sent.set(req.id, data);
      frames.push(answerHeader(req.id, r.offset, 0, false, data.length), data);
      if (req.id !== 40) return;
      const all = Buffer.concat(frames);
      frames = [];
      // Cut inside a header near the end, so a header straddles two reads.
      const cut = all.length - 7000;
      socket.write(all.subarray(0, cut));
      setTimeout(() => socket.write(all.subarray(cut)), 20);
    });
    servers.push(server);
    const r = recorder();
    const lane = new DataLane('127.0.0.1', port, r.events);
    await r.ready;
    const order: number[] = [];
    const events = r.events;
    const answer = events.answer;
    events.answer = (id, a) => {
      order.push(id);
      answer(id, a);
    };
    for (let id = 1; id <= 40; id++) lane.send(id, read(id * 4096, id === 9 ? 300_000 : 8192), {});
    await r.answered(40);
    assert.deepEqual(order, Array.from({ length: 40 }, (_, i) => i + 1));
    for (let id = 1; id <= 40; id++) {
      const a = r.answers.get(id);
      assert.ok(a && !(a instanceof StrataError) && a.$case === 'read', `answer ${id}`);
      assert.ok(a.read.data.equals(sent.get(id)!), `answer ${id} intact`);
      assert.equal(a.read.offset, id * 4096);
    }
    const big = r.answers.get(9);
    assert.ok(big && !(big instanceof StrataError) && big.$case === 'read');
    assert.equal(big.read.data.buffer.byteLength, 300_000, 'a large answer has a buffer of its own');
    assert.equal(lane.inflight, 0);
    lane.close();
  });

  test('over TLS: answers split anywhere arrive intact; a server whose certificate does not match is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'data-lane-tls-'));
    try {
      const ssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
      ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=resolver.test', '-addext', 'subjectAltName=DNS:resolver.test']);
      const cert = fs.readFileSync(path.join(dir, 'c.pem'));
      const key = fs.readFileSync(path.join(dir, 'k.pem'));
      const data = randomBytes(1 << 20);
      const { server, port } = await scriptedServer((socket, req) => {
        const r = req.request?.$case === 'read' ? req.request.read : read(0, 0);
        const frame = Buffer.concat([answerHeader(req.id, r.offset, 0, false, data.length), data]);
        for (let at = 0; at < frame.length; at += 5000) socket.write(frame.subarray(at, at + 5000));
      }, { cert, key });
      servers.push(server);
      const secureContext = createSecureContext({ ca: cert });
      const r = recorder();
      const lane = new DataLane('127.0.0.1', port, r.events, { secureContext, servername: 'resolver.test' });
      await r.ready;
      lane.send(1, read(4096, 1 << 20), {});
      lane.send(2, read(8192, 1 << 20), {});
      await r.answered(2);
      for (const id of [1, 2]) {
        const a = r.answers.get(id);
        assert.ok(a && !(a instanceof StrataError) && a.$case === 'read');
        assert.ok(a.read.data.equals(data), `answer ${id}`);
      }
      lane.close();
      const wrong = recorder();
      new DataLane('127.0.0.1', port, wrong.events, { secureContext, servername: 'other.test' });
      assert.equal((await wrong.broken).code, GrpcCode.UNAVAILABLE);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an answer to nothing asked, or longer than asked, breaks the lane', async () => {
    for (const bad of [(id: number) => answerHeader(id + 7, 0, 0, false, 10), (id: number) => answerHeader(id, 0, 0, false, 4097), (id: number) => answerHeader(id, 0, 9, false, 0)]) {
      const { server, port } = await scriptedServer((socket, req) => socket.write(bad(req.id)));
      servers.push(server);
      const r = recorder();
      const lane = new DataLane('127.0.0.1', port, r.events);
      await r.ready;
      lane.send(1, read(0, 4096), {});
      const e = await r.broken;
      assert.equal(e.code, GrpcCode.INTERNAL);
      assert.match(e.message, /protocol error/);
      assert.equal(r.answers.size, 0);
    }
  });

  test('a refused connection and a closed one break the lane (UNAVAILABLE)', async () => {
    const { server, port } = await scriptedServer((socket) => socket.destroy());
    const r = recorder();
    const lane = new DataLane('127.0.0.1', port, r.events);
    await r.ready;
    lane.send(1, read(0, 4096), {});
    assert.equal((await r.broken).code, GrpcCode.UNAVAILABLE);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const r2 = recorder();
    new DataLane('127.0.0.1', port, r2.events);
    assert.equal((await r2.broken).code, GrpcCode.UNAVAILABLE);
  });

  test('dataPortOf takes a port from the initial metadata, nothing else', () => {
    const md = (v: unknown[]) => ({ get: (k: string) => (k === DATA_PORT_HEADER ? v : []) });
    assert.equal(dataPortOf(md(['7401'])), 7401);
    for (const v of [[], ['0'], ['65536'], ['-1'], ['12x'], [Buffer.from('1')], ['123456']]) assert.equal(dataPortOf(md(v)), undefined, JSON.stringify(v));
    assert.equal(dataPortOf(undefined), undefined);
  });
});

/** A Session stream the test plays the resolver of; `metadata` names a data port. */
class FakeStream implements SessionStream {
  readonly written: number[] = [];
  private readonly listeners = new Map<string, ((arg?: unknown) => void)[]>();
  write(req: { id: number }): boolean {
    this.written.push(req.id);
    return true;
  }
  cancel(): void {}
  on(event: string, listener: (arg: never) => void): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener as (arg?: unknown) => void]);
    return this;
  }
  emit(event: string, arg?: unknown): void {
    for (const l of this.listeners.get(event) ?? []) l(arg);
  }
  answer(id: number): void {
    const res: SessionResponse = { id, response: { $case: 'read', read: { offset: 0, data: Buffer.from('via session'), eof: true } } };
    this.emit('data', res);
  }
}

class FakeLane implements DataLaneHandle {
  readonly sent: number[] = [];
  closed = false;
  constructor(readonly events: DataLaneEvents) {}
  send(id: number): void {
    this.sent.push(id);
  }
  close(): void {
    this.closed = true;
  }
}

describe('SessionClient with a data stream', () => {
  const payload = (offset: number): SessionPayload => ({ $case: 'read', read: read(offset, 4096) });
  const setup = () => {
    const clock = new FakeClock();
    const streams: FakeStream[] = [];
    const lanes: { port: number; lane: FakeLane }[] = [];
    const endpoint: SessionEndpoint = {
      address: 'a:1',
      openSession: () => {
        const s = new FakeStream();
        streams.push(s);
        return s;
      },
      openData: (port, events) => {
        const lane = new FakeLane(events);
        lanes.push({ port, lane });
        return lane;
      },
    };
    const data: string[] = [];
    const client = new SessionClient({ pool: { pick: () => endpoint }, clock, onDataEvent: (e) => data.push(e.type) });
    return { clock, streams, lanes, client, data };
  };
  const md = (port: string) => ({ get: (k: string) => (k === DATA_PORT_HEADER ? [port] : []) });
  const bytes = (a: SessionAnswer): string => (a.$case === 'read' ? a.read.data.toString() : a.$case);

  test('reads go to the data stream once it is up, everything else and earlier reads over the Session', async () => {
    const { streams, lanes, client, data } = setup();
    const r1 = client.request(payload(0));
    const s = streams[0];
    s.emit('metadata', md('7401'));
    assert.equal(lanes.length, 1);
    assert.equal(lanes[0].port, 7401);
    const r2 = client.request(payload(4096));
    assert.deepEqual(s.written, [1, 2], 'sent over the Session while the lane connects');
    lanes[0].lane.events.ready();
    const r3 = client.request(payload(8192));
    const r4 = client.request({ $case: 'readLink', readLink: { layer: undefined, path: Buffer.from('/l') } });
    assert.deepEqual(lanes[0].lane.sent, [3]);
    assert.deepEqual(s.written, [1, 2, 4]);
    lanes[0].lane.events.answer(3, { $case: 'read', read: { offset: 8192, data: Buffer.from('via lane'), eof: false } });
    s.answer(1);
    s.answer(2);
    s.answer(4);
    assert.deepEqual([bytes(await r1), bytes(await r2), bytes(await r3), bytes(await r4)], ['via session', 'via session', 'via lane', 'via session']);
    assert.deepEqual(data, ['connected']);
    client.close();
    assert.ok(lanes[0].lane.closed);
  });

  test('a lane that breaks: its reads go over the Session at once, the lane is opened again later', async () => {
    const { clock, streams, lanes, client, data } = setup();
    const warm = client.request({ $case: 'readLink', readLink: { layer: undefined, path: Buffer.from('/l') } });
    streams[0].emit('metadata', md('7401'));
    lanes[0].lane.events.ready();
    const r1 = client.request(payload(0));
    const r2 = client.request(payload(4096));
    lanes[0].lane.events.answer(3, new StrataError(Errno.ENOENT, 'gone'));
    await assert.rejects(r2, (e: StrataError) => e.errno === Errno.ENOENT);
    lanes[0].lane.events.broken(new StrataError(Errno.EIO, 'closed', { code: GrpcCode.UNAVAILABLE }));
    assert.deepEqual(streams[0].written, [1, 2], 'the unanswered read is sent again over the Session');
    const r3 = client.request(payload(8192));
    assert.deepEqual(streams[0].written, [1, 2, 4]);
    streams[0].answer(2);
    streams[0].answer(1);
    streams[0].answer(4);
    assert.equal(bytes(await r1), 'via session');
    await warm;
    await r3;
    assert.equal(lanes.length, 1);
    await clock.advance(FIRST_LANE_RETRY_MS);
    assert.equal(lanes.length, 2, 'opened again after the pause');
    lanes[1].lane.events.ready();
    const r5 = client.request(payload(0));
    assert.deepEqual(lanes[1].lane.sent, [5]);
    lanes[1].lane.events.answer(5, { $case: 'read', read: { offset: 0, data: Buffer.from('again'), eof: false } });
    assert.equal(bytes(await r5), 'again');
    assert.deepEqual(data, ['connected', 'broken', 'connected']);
    client.close();
  });

  test('the Session stream breaking closes its lane and sends the lane\'s reads again on the next stream', async () => {
    const { clock, streams, lanes, client } = setup();
    const r0 = client.request({ $case: 'readLink', readLink: { layer: undefined, path: Buffer.from('/l') } });
    streams[0].emit('metadata', md('7401'));
    lanes[0].lane.events.ready();
    const r1 = client.request(payload(0));
    assert.deepEqual(lanes[0].lane.sent, [2]);
    streams[0].emit('error', { code: GrpcCode.UNAVAILABLE, details: 'gone' });
    assert.ok(lanes[0].lane.closed);
    // A late answer from the closed lane is not taken for anything.
    await clock.advance(1_000);
    assert.equal(streams.length, 2);
    assert.deepEqual(streams[1].written.sort(), [1, 2]);
    assert.equal(lanes.length, 1, 'no lane until the new stream names one');
    streams[1].answer(1);
    streams[1].answer(2);
    await r0;
    assert.equal(bytes(await r1), 'via session');
    client.close();
  });
});
