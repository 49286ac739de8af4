import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Socket, connect } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { Errno, StrataError } from '@strata/errors';
import { ANSWER_DATA, ANSWER_ERROR, ANSWER_HEADER_BYTES, DATA_MAGIC, ErrorInfo, SessionRequest, type OperationHandlers, type ReadRequest } from '@strata/protocol';
import { createLogger } from '@strata/telemetry';
import { RequestTracker } from '../observability/request-tracker';
import { DataStreamServer } from './data-stream';
import { answerPool } from '../projection/file-data';
import { SESSION_READ_BYTES } from './session';

const log = createLogger({ service: 'test', level: 'silent' });
const rpc = { log, tracker: new RequestTracker(log) };

/** Handlers whose reads answer `length` bytes of a pattern of the offset, or wait for the test to let them. */
function handlers(opts: { gate?: Promise<void>; started?: { n: number } } = {}): OperationHandlers {
  const refuse = () => Promise.reject(new StrataError(Errno.EINVAL, 'not here'));
  return {
    read: async (req: ReadRequest) => {
      if (opts.started) opts.started.n++;
      await opts.gate;
      if (req.path.toString() === '/missing') throw new StrataError(Errno.ENOENT, 'no such file', { path: req.path });
      const n = Math.min(req.length, 3_000_000 - req.offset);
      const data = Buffer.alloc(Math.max(0, n), req.offset % 251);
      return { offset: req.offset, data, eof: req.offset + n >= 3_000_000 };
    },
    stat: refuse,
    readDir: refuse,
    readLink: refuse,
    listXattr: refuse,
    getXattr: refuse,
    statFs: refuse,
  } as unknown as OperationHandlers;
}

function frame(req: SessionRequest): Buffer {
  const b = SessionRequest.encode(req).finish();
  const out = Buffer.alloc(4 + b.length);
  out.writeUInt32LE(b.length, 0);
  out.set(b, 4);
  return out;
}

const readReq = (id: number, offset: number, length: number, path = '/f'): SessionRequest => ({
  id,
  request: { $case: 'read', read: { layer: { ref: { $case: 'name', name: 'l' } }, path: Buffer.from(path), offset, length } },
  traceContext: {},
});

interface Answer {
  id: number;
  offset: number;
  kind: number;
  eof: boolean;
  body: Buffer;
}

/** A raw client: collects answers as they arrive. */
function client(port: number, socket: Socket = connect(port, '127.0.0.1')): { socket: Socket; answers: Answer[]; closed: Promise<void>; wait(n: number): Promise<void> } {
  const answers: Answer[] = [];
  let held = Buffer.alloc(0);
  const waiters: (() => void)[] = [];
  socket.on('data', (d: Buffer) => {
    held = Buffer.concat([held, d]);
    while (held.length >= ANSWER_HEADER_BYTES && held.length >= ANSWER_HEADER_BYTES + held.readUInt32LE(20)) {
      const n = held.readUInt32LE(20);
      answers.push({
        id: held.readUInt32LE(0) + held.readUInt32LE(4) * 2 ** 32,
        offset: held.readUInt32LE(8) + held.readUInt32LE(12) * 2 ** 32,
        kind: held[16],
        eof: held[17] === 1,
        body: held.subarray(ANSWER_HEADER_BYTES, ANSWER_HEADER_BYTES + n),
      });
      held = held.subarray(ANSWER_HEADER_BYTES + n);
    }
    for (const w of waiters) w();
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return {
    socket,
    answers,
    closed,
    wait: (n) =>
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (answers.length >= n) resolve();
        };
        waiters.push(check);
        check();
      }),
  };
}

describe('DataStreamServer', () => {
  const servers: DataStreamServer[] = [];
  after(() => {
    for (const s of servers) s.close();
  });
  const start = async (h = handlers(), maxInflight = 64): Promise<{ server: DataStreamServer; port: number }> => {
    const server = new DataStreamServer(h, rpc, { maxInflight, maxRequestBytes: 1 << 20 });
    servers.push(server);
    return { server, port: await server.listen('127.0.0.1') };
  };

  test('answers reads with their data and failures with an ErrorInfo; only reads are served', async () => {
    const { port } = await start();
    const c = client(port);
    c.socket.write(Buffer.concat([DATA_MAGIC, frame(readReq(1, 0, 1 << 20)), frame(readReq(2 ** 40 + 5, 2_999_000, 4096))]));
    // A frame split across writes.
    const f = frame(readReq(3, 0, 10, '/missing'));
    c.socket.write(f.subarray(0, 3));
    await new Promise((r) => setTimeout(r, 20));
    c.socket.write(f.subarray(3));
    c.socket.write(frame({ id: 4, request: { $case: 'readLink', readLink: { layer: undefined, path: Buffer.from('/x') } }, traceContext: {} }));
    await c.wait(4);
    const by = new Map(c.answers.map((a) => [a.id, a]));
    const a1 = by.get(1)!;
    assert.equal(a1.kind, ANSWER_DATA);
    assert.ok(a1.body.equals(Buffer.alloc(1 << 20, 0)));
    assert.equal(a1.eof, false);
    const a2 = by.get(2 ** 40 + 5)!;
    assert.equal(a2.offset, 2_999_000);
    assert.equal(a2.body.length, 1000);
    assert.equal(a2.eof, true);
    const a3 = by.get(3)!;
    assert.equal(a3.kind, ANSWER_ERROR);
    assert.equal(ErrorInfo.decode(a3.body).errno, Errno.ENOENT);
    const a4 = by.get(4)!;
    assert.equal(a4.kind, ANSWER_ERROR);
    assert.equal(ErrorInfo.decode(a4.body).errno, Errno.EINVAL);
    c.socket.destroy();
  });

  test("pooled answers are given back once written and read into again: every answer keeps its own bytes", async () => {
    const made = new Set<ArrayBufferLike>();
    const h = handlers();
    const pooled = {
      ...h,
      read: async (req: ReadRequest) => {
        const data = answerPool.take(req.length);
        made.add(data.buffer);
        data.fill(req.offset % 251);
        await new Promise((r) => setImmediate(r));
        return { offset: req.offset, data, eof: false };
      },
    } as unknown as OperationHandlers;
    const { port } = await start(pooled);
    const c = client(port);
    c.socket.write(DATA_MAGIC);
    const length = 512 << 10;
    // One read at a time: each answer's buffer is back in the pool before the next read takes one.
    for (let i = 0; i < 6; i++) {
      c.socket.write(frame(readReq(i + 1, i * 1000, length)));
      await c.wait(i + 1);
    }
    for (const [i, a] of c.answers.entries()) assert.ok(a.body.equals(Buffer.alloc(length, (i * 1000) % 251)), `answer ${i + 1} has its own bytes`);
    assert.ok(made.size < 6, `buffers reused (${made.size} made for 6 answers)`);
    // Many at once: each is given back after its own write only.
    for (let i = 0; i < 8; i++) c.socket.write(frame(readReq(100 + i, 7 * (i + 1), length)));
    await c.wait(14);
    for (const a of c.answers.slice(6)) assert.ok(a.body.equals(Buffer.alloc(length, a.offset % 251)), `answer ${a.id}`);
    c.socket.destroy();
  });

  test('a connection that does not greet, or sends a frame over the bound or undecodable, is closed', async () => {
    const { port } = await start();
    const huge = Buffer.alloc(4);
    huge.writeUInt32LE((1 << 20) + 1, 0);
    for (const bytes of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.concat([DATA_MAGIC, huge]), Buffer.concat([DATA_MAGIC, Buffer.from([3, 0, 0, 0, 0xff, 0xff, 0xff])])]) {
      const c = client(port);
      c.socket.write(bytes);
      await c.closed;
      assert.equal(c.answers.length, 0);
    }
  });

  /** A server whose reads wait until the test opens them, a client that sent `reqs` at once, and how many reads started. */
  const gatedReads = async (reqs: SessionRequest[]): Promise<{ server: DataStreamServer; port: number; c: ReturnType<typeof client>; open: () => void; started: { n: number } }> => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const started = { n: 0 };
    const { server, port } = await start(handlers({ gate, started }), 64);
    const c = client(port);
    c.socket.write(Buffer.concat([DATA_MAGIC, ...reqs.map(frame)]));
    return { server, port, c, open, started };
  };

  test('bounded: no more reads start than the bounds allow, whatever is sent', async () => {
    const { c, open, started } = await gatedReads(Array.from({ length: 200 }, (_, i) => readReq(i + 1, 0, 1 << 20)));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(started.n, SESSION_READ_BYTES / (1 << 20), 'held by the bytes in flight (16 MiB of 1 MiB reads)');
    open();
    await c.wait(200);
    assert.deepEqual(
      c.answers.map((a) => a.id).sort((a, b) => a - b),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    c.socket.destroy();
  });

  test('answers finished together leave in one write, each intact', async () => {
    const { c, open, started } = await gatedReads(Array.from({ length: 40 }, (_, i) => readReq(i + 1, (i + 1) * 10, 20)));
    for (let i = 0; i < 100 && started.n < 40; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(started.n, 40);
    // Write calls of every socket in this process, from here (the client has sent everything).
    const proto = Socket.prototype as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
    const originals = { _write: proto._write, _writev: proto._writev };
    let writes = 0;
    for (const k of ['_write', '_writev'] as const) {
      proto[k] = function (this: unknown, ...a: unknown[]) {
        writes++;
        return originals[k].apply(this, a);
      };
    }
    try {
      open();
      await c.wait(40);
    } finally {
      Object.assign(proto, originals);
    }
    assert.ok(writes <= 2, `${writes} socket writes for 40 answers`);
    for (const a of c.answers) {
      assert.equal(a.kind, ANSWER_DATA);
      assert.equal(a.offset, a.id * 10);
      assert.ok(a.body.equals(Buffer.alloc(20, (a.id * 10) % 251)));
    }
    c.socket.destroy();
  });

  test('drain: answers in progress are written, then the connection ends; new connections are refused', async () => {
    const { server, port, c, open } = await gatedReads([readReq(1, 0, 4096)]);
    await new Promise((r) => setTimeout(r, 50));
    server.drain();
    open();
    await c.closed;
    assert.deepEqual(
      c.answers.map((a) => a.id),
      [1],
    );
    const late = client(port);
    await late.closed;
    for (let i = 0; i < 100 && server.connections > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.connections, 0);
  });

  test('over mutual TLS: each request passes the admission for the certificate presented; no certificate, no connection', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'data-stream-tls-'));
    try {
      const ssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
      const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
      ssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=ca']);
      for (const [name, cn, ext] of [
        ['server', 'resolver', 'subjectAltName=IP:127.0.0.1'],
        ['alice', 'alice', ''],
      ]) {
        ssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
        fs.writeFileSync(path.join(dir, `${name}.ext`), `${ext}\n`);
        ssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(name.length), '-days', '1', '-out', `${name}.crt`, '-extfile', `${name}.ext`]);
      }
      const read = (f: string): Buffer => fs.readFileSync(path.join(dir, f));
      const seen: (string | undefined)[] = [];
      const server = new DataStreamServer(handlers(), rpc, {
        maxInflight: 8,
        maxRequestBytes: 1 << 20,
        tls: { options: { cert: read('server.crt'), key: read('server.key'), ca: read('ca.crt') }, requestCert: true },
        admission: (caller) => {
          const cn = caller.getAuthContext().sslPeerCertificate?.subject?.CN;
          return async (req) => {
            seen.push(typeof cn === 'string' ? cn : undefined);
            if (req.request?.$case === 'read' && req.request.read.offset > 0) throw new StrataError(Errno.EACCES, 'permission denied');
          };
        },
      });
      servers.push(server);
      const port = await server.listen('127.0.0.1');
      const c = client(port, connectTls({ host: '127.0.0.1', port, ca: read('ca.crt'), cert: read('alice.crt'), key: read('alice.key') }));
      c.socket.write(Buffer.concat([DATA_MAGIC, frame(readReq(1, 0, 1 << 20)), frame(readReq(2, 4096, 4096))]));
      await c.wait(2);
      const by = new Map(c.answers.map((a) => [a.id, a]));
      assert.ok(by.get(1)!.body.equals(Buffer.alloc(1 << 20, 0)));
      assert.equal(by.get(2)!.kind, ANSWER_ERROR);
      assert.equal(ErrorInfo.decode(by.get(2)!.body).errno, Errno.EACCES);
      assert.deepEqual(seen, ['alice', 'alice']);
      c.socket.destroy();
      const anonymous = client(port, connectTls({ host: '127.0.0.1', port, ca: read('ca.crt') }));
      anonymous.socket.write(Buffer.concat([DATA_MAGIC, frame(readReq(3, 0, 4096))]));
      await anonymous.closed;
      assert.equal(anonymous.answers.length, 0);
      assert.deepEqual(seen, ['alice', 'alice']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
