import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { SessionServiceService, SessionResponse, type SessionRequest } from '@strata/protocol';
import { Endpoint } from './endpoints';
import { VIEW_READ_BYTES, sessionResponseFromBytes } from './session-wire';

const encode = (v: SessionResponse): Buffer => Buffer.from(SessionResponse.encode(v).finish());

/** What the generated decoder makes of `buf`, or the error it throws. */
function generated(buf: Buffer): SessionResponse | Error {
  try {
    return SessionResponse.decode(buf);
  } catch (err) {
    return err as Error;
  }
}

function fast(buf: Buffer): SessionResponse | Error {
  try {
    return sessionResponseFromBytes(buf);
  } catch (err) {
    return err as Error;
  }
}

describe('sessionResponseFromBytes', () => {
  it('decodes read answers as the generated decoder does, large data as a view of the message', () => {
    for (const id of [0, 1, 127, 128, 2 ** 32 + 7, 2 ** 53 - 1]) {
      for (const offset of [0, 1, 2 ** 40 + 3]) {
        for (const eof of [false, true]) {
          for (const size of [0, 17, VIEW_READ_BYTES - 1, VIEW_READ_BYTES, 1 << 20]) {
            const v: SessionResponse = { id, response: { $case: 'read', read: { offset, data: randomBytes(size), eof } } };
            const bytes = encode(v);
            const got = sessionResponseFromBytes(bytes);
            assert.deepEqual(got, v, `id ${id} offset ${offset} eof ${eof} size ${size}`);
            assert.ok(got.response?.$case === 'read');
            // Large data is the message's own memory (no copy); small data is copied out as generated (no pinned pool slab).
            const d = got.response.read.data;
            const inMessage = d.buffer === bytes.buffer && d.byteOffset >= bytes.byteOffset && d.byteOffset < bytes.byteOffset + bytes.length;
            assert.equal(inMessage, size >= VIEW_READ_BYTES, `size ${size}`);
          }
        }
      }
    }
  });

  it('decodes every other answer as generated', () => {
    const others: SessionResponse[] = [
      { id: 6, response: { $case: 'readLink', readLink: { target: Buffer.from('/x') } } },
      { id: 7, response: undefined },
      { id: 8, response: { $case: 'error', error: { errno: 2, errnoName: 'ENOENT', path: Buffer.from('/a'), code: 5, message: 'gone' } } },
    ];
    for (const v of others) assert.deepEqual(sessionResponseFromBytes(encode(v)), generated(encode(v)));
  });

  it('agrees with the generated decoder on unusual and hostile encodings of a large read', () => {
    const data = randomBytes(VIEW_READ_BYTES + 5);
    const base = encode({ id: 300, response: { $case: 'read', read: { offset: 4096, data, eof: true } } });
    const variants: Buffer[] = [
      // An unknown field after the read, a repeated id, a second read (last one wins), a non-canonical eof.
      Buffer.concat([base, Buffer.from([0x50, 0x01])]),
      Buffer.concat([base, Buffer.from([0x08, 0x05])]),
      Buffer.concat([base, encode({ id: 0, response: { $case: 'read', read: { offset: 1, data: Buffer.from('x'), eof: false } } })]),
      Buffer.concat([base.subarray(0, base.length - 1), Buffer.from([0x82, 0x00])]),
      // Truncated anywhere.
      base.subarray(0, base.length - 1),
      base.subarray(0, 3),
      base.subarray(0, 8),
      // A 10-byte id varint (past 2^53).
      Buffer.concat([Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), base.subarray(3)]),
    ];
    for (let i = 0; i < 200; i++) {
      const m = Buffer.from(base);
      for (let k = 0; k < 3; k++) m[Math.floor(Math.random() * Math.min(m.length, 16))] = Math.floor(Math.random() * 256);
      variants.push(m);
    }
    for (const [i, b] of variants.entries()) {
      const want = generated(b);
      const got = fast(b);
      if (want instanceof Error) assert.ok(got instanceof Error, `variant ${i}: the generated decoder throws, so must this`);
      else assert.deepEqual(got, want, `variant ${i}`);
    }
  });
});

describe('Endpoint.openSession over grpc-js', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.forceShutdown();
  });

  it('receives 1 MiB read answers intact, each in memory of its own', async () => {
    const server = new Server();
    servers.push(server);
    const sent = new Map<number, Buffer>();
    server.addService(SessionServiceService, {
      session: (call: ServerDuplexStream<SessionRequest, SessionResponse>) => {
        call.on('data', (req: SessionRequest) => {
          const data = randomBytes(1 << 20);
          sent.set(req.id, data);
          call.write({ id: req.id, response: { $case: 'read', read: { offset: req.id << 20, data, eof: req.id === 4 } } });
        });
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const endpoint = new Endpoint(`127.0.0.1:${port}`);
    try {
      const stream = endpoint.openSession();
      const got: SessionResponse[] = [];
      const done = new Promise<void>((resolve, reject) => {
        stream.on('data', (res: SessionResponse) => {
          got.push(res);
          if (got.length === 4) resolve();
        });
        stream.on('error', reject);
      });
      for (let id = 1; id <= 4; id++) stream.write({ id, request: { $case: 'readLink', readLink: { path: Buffer.from('/'), layer: undefined } }, traceContext: {} });
      await done;
      stream.end();
      const buffers = new Set<ArrayBufferLike>();
      for (const res of got) {
        assert.ok(res.response?.$case === 'read');
        assert.ok(res.response.read.data.equals(sent.get(res.id)!), `answer ${res.id}`);
        assert.equal(res.response.read.offset, res.id << 20);
        assert.equal(res.response.read.eof, res.id === 4);
        buffers.add(res.response.read.data.buffer);
      }
      // Views are safe to keep only if no two answers share memory grpc-js might reuse.
      assert.equal(buffers.size, 4);
    } finally {
      endpoint.close();
    }
  });
});
