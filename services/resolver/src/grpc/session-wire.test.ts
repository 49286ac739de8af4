import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client, Metadata, Server, ServerCredentials, credentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { SessionResponse, SessionServiceService, type SessionRequest } from '@strata/protocol';
import { ScatteredMessage, sessionResponseBytes } from './session-wire';

const generated = (v: SessionResponse): Buffer => Buffer.from(SessionResponse.encode(v).finish());

/** The serializer's result as contiguous bytes, whichever form it took. */
function bytesOf(b: Buffer | ScatteredMessage): Buffer {
  return b instanceof ScatteredMessage ? b.toBuffer() : b;
}

describe('sessionResponseBytes', () => {
  it('writes read answers byte for byte as the generated encoder does', () => {
    for (const id of [0, 1, 127, 128, 300, 2 ** 32 + 7, 2 ** 53 - 1]) {
      for (const offset of [0, 1, 4096, 2 ** 40 + 3]) {
        for (const eof of [false, true]) {
          for (const size of [4096, 65_536 + 17, 1 << 20]) {
            const v: SessionResponse = { id, response: { $case: 'read', read: { offset, data: randomBytes(size), eof } } };
            const fast = bytesOf(sessionResponseBytes(v));
            assert.ok(fast.equals(generated(v)), `id ${id} offset ${offset} eof ${eof} size ${size}`);
            assert.deepEqual(SessionResponse.decode(fast), v);
          }
        }
      }
    }
  });

  it('encodes every other answer as generated', () => {
    const others: SessionResponse[] = [
      { id: 5, response: { $case: 'read', read: { offset: 9, data: Buffer.from('small'), eof: true } } },
      { id: 6, response: { $case: 'readLink', readLink: { target: Buffer.from('/x') } } },
      { id: 7, response: undefined },
    ];
    for (const v of others) assert.ok(bytesOf(sessionResponseBytes(v)).equals(generated(v)), JSON.stringify(v.response?.$case));
  });
});

describe('ScatteredMessage', () => {
  it('copies any range as Buffer.prototype.copy does on the joined bytes', () => {
    const pieces = [randomBytes(3), Buffer.alloc(0), randomBytes(10), randomBytes(2)];
    const joined = Buffer.concat(pieces);
    const m = new ScatteredMessage(pieces);
    assert.equal(m.byteLength, joined.length);
    assert.equal(m.length, joined.length);
    for (let sourceStart = 0; sourceStart <= joined.length; sourceStart++) {
      for (let sourceEnd = sourceStart; sourceEnd <= joined.length + 2; sourceEnd++) {
        for (const [size, targetStart] of [
          [20, 0],
          [20, 5],
          [6, 2],
          [3, 3],
        ]) {
          const want = Buffer.alloc(size, 0xee);
          const got = Buffer.alloc(size, 0xee);
          const n = joined.copy(want, targetStart, sourceStart, sourceEnd);
          assert.equal(m.copy(got, targetStart, sourceStart, sourceEnd), n, `[${sourceStart}, ${sourceEnd}) into ${size}@${targetStart}`);
          assert.ok(got.equals(want), `[${sourceStart}, ${sourceEnd}) into ${size}@${targetStart}`);
        }
      }
    }
  });
});

describe('read answers through grpc-js', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.forceShutdown();
  });

  it('reach a client with the generated decoder intact (grpc-js frames the pieces)', async () => {
    const server = new Server({ 'grpc.max_send_message_length': 16 << 20 });
    servers.push(server);
    const sent = new Map<number, Buffer>();
    const service = { session: { ...SessionServiceService.session, responseSerialize: sessionResponseBytes } };
    server.addService(service, {
      session: (call: ServerDuplexStream<SessionRequest, SessionResponse>) => {
        call.on('data', (req: SessionRequest) => {
          const data = randomBytes(req.id === 3 ? 5000 : 1 << 20);
          sent.set(req.id, data);
          call.write({ id: req.id, response: { $case: 'read', read: { offset: req.id * 4096, data, eof: req.id === 2 } } });
        });
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 });
    try {
      const m = SessionServiceService.session;
      const stream = client.makeBidiStreamRequest<SessionRequest, SessionResponse>(m.path, m.requestSerialize, m.responseDeserialize, new Metadata());
      const got: SessionResponse[] = [];
      const done = new Promise<void>((resolve, reject) => {
        stream.on('data', (res: SessionResponse) => {
          got.push(res);
          if (got.length === 3) resolve();
        });
        stream.on('error', reject);
      });
      for (let id = 1; id <= 3; id++) stream.write({ id, request: { $case: 'readLink', readLink: { path: Buffer.from('/'), layer: undefined } }, traceContext: {} });
      await done;
      stream.end();
      for (const res of got) {
        assert.ok(res.response?.$case === 'read');
        assert.ok(res.response.read.data.equals(sent.get(res.id)!), `answer ${res.id}`);
        assert.equal(res.response.read.offset, res.id * 4096);
        assert.equal(res.response.read.eof, res.id === 2);
      }
    } finally {
      client.close();
    }
  });
});
