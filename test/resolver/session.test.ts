import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, Metadata, credentials } from '@grpc/grpc-js';
import { StrataClient } from '@strata/client';
import { SessionRequest, SessionResponse } from '@strata/protocol';
import { rssOf, startResolver, waitFor, type ResolverProcess } from '@strata/harness';
import { bytesReadBy, sampleRss, untilQuiet } from '../support/proc-sampling';
import { makeStore, type StoreFixture } from '../support/store-fixture';

const MiB = 1 << 20;
let fx: StoreFixture;
let resolver: ResolverProcess;
let client: StrataClient;
let ref: { id: number };

before(async () => {
  fx = await makeStore([
    { entries: [{ type: 'file', path: '/small', content: 'small\n' }] },
    { entries: [{ type: 'file', path: '/top', content: 'top\n' }] },
  ]);
  // Written directly: an 8,000-entry directory (slow to merge the first time) and a 1 MiB file.
  const bigDir = path.join(fx.rootsTopFirst[1], 'big');
  fs.mkdirSync(bigDir);
  for (let i = 0; i < 8_000; i++) fs.writeFileSync(path.join(bigDir, `f${i}`), '');
  fs.writeFileSync(path.join(fx.rootsTopFirst[0], 'mib'), Buffer.alloc(MiB, 7));
  resolver = await startResolver({ store: fx.store });
  client = new StrataClient({ resolver: resolver.address });
  ref = { id: fx.layers[1].layerId };
});

after(async () => {
  client?.close();
  await resolver?.stop();
  fx?.cleanup();
});

describe('Session stream', () => {
  test('responses come back out of order: a quick stat overtakes a slow directory listing', async () => {
    const s = client.session();
    const order: string[] = [];
    const layer = { ref: { $case: 'id' as const, id: ref.id } };
    const slow = s.request({ $case: 'readDir', readDir: { layer, path: Buffer.from('/big'), offset: 0, limit: 10 } }).then(() => order.push('readDir'));
    const fast = s.request({ $case: 'stat', stat: { layer, path: Buffer.from('/small') } }).then(() => order.push('stat'));
    await Promise.all([slow, fast]);
    assert.deepEqual(order, ['stat', 'readDir']);
    s.close();
  });

  test('a client that stops reading costs bounded memory, and gets every answer once it reads again', async () => {
    const pid = resolver.child.pid as number;
    const raw = new Client(resolver.address, credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * MiB });
    const stream = raw.makeBidiStreamRequest('/strata.v1.SessionService/Session', (b: Buffer) => b, (b: Buffer) => b, new Metadata());
    const N = 1500; // 1500 x 1 MiB: ~1.5 GiB if the resolver buffered what it cannot send
    const before = rssOf(pid);
    const readBefore = bytesReadBy(pid);
    // Every sample from here to the last answer counts, not one taken at a moment picked in advance.
    const rss = sampleRss(pid);
    const received = new Set<number>();
    stream.on('data', (b: Buffer) => {
      const res = SessionResponse.decode(b);
      assert.equal(res.response?.$case, 'read');
      if (res.response?.$case === 'read') assert.equal(res.response.read.data.length, MiB);
      received.add(res.id);
    });
    stream.pause();
    for (let id = 1; id <= N; id++) {
      const req = SessionRequest.encode({
        id,
        request: { $case: 'read', read: { layer: { ref: { $case: 'id', id: ref.id } }, path: Buffer.from('/mib'), offset: 0, length: MiB } },
        traceContext: {},
      }).finish();
      stream.write(Buffer.from(req));
    }
    try {
      // The client does not read. Wait until the resolver has served what flow control lets it
      // (each answer reads 1 MiB of the file) and then stopped: less than one answer's worth read
      // in 300 ms. A resolver that buffered everything would be at its largest by then.
      await waitFor('the resolver to serve the stalled stream', () => (bytesReadBy(pid) - readBefore >= MiB ? true : undefined), 30_000);
      await untilQuiet(pid, { quietBytes: MiB, quietMs: 300, timeoutMs: 60_000 });
      const servedWhileStalled = Math.floor((bytesReadBy(pid) - readBefore) / MiB);
      assert.ok(servedWhileStalled < N, `the resolver served ${servedWhileStalled} of ${N} answers to a client that did not read`);
      stream.resume();
      await waitFor('every answer', () => (received.size === N ? true : undefined), 60_000);
    } finally {
      rss.stop();
      stream.end();
      raw.close();
    }
    const grownMiB = (rss.peak - before) / MiB;
    assert.ok(grownMiB < 300, `resolver grew ${grownMiB.toFixed(0)} MiB at its peak (${rss.samples} samples, the stall and the catch-up) over a client that stopped reading`);
  });
});
