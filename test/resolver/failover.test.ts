import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { Projection } from '@strata/traversal';
import { startResolver, waitFor, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';

const MiB = 1 << 20;
/** Logged by a strata service when a signal starts its shutdown. */
const DRAIN_EVENT = 'shutdown.begin';
let fx: StoreFixture;
let ref: { id: number };
let fileHash: string;
const started: ResolverProcess[] = [];
const clients: StrataClient[] = [];

async function resolver(): Promise<ResolverProcess> {
  const r = await startResolver({ store: fx.store, extra: ['--grace-ms', '5000'] });
  started.push(r);
  return r;
}

function clientOf(...rs: ResolverProcess[]): StrataClient {
  const c = new StrataClient({ resolver: rs.map((r) => r.address), retry: { attempts: 6, backoffMs: 20 } });
  clients.push(c);
  return c;
}

before(async () => {
  fx = await makeStore([{ entries: [{ type: 'file', path: '/base', content: 'b' }] }, { entries: [{ type: 'file', path: '/top', content: 't' }] }]);
  const data = Buffer.alloc(48 * MiB);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
  fs.writeFileSync(path.join(fx.rootsTopFirst[0], 'big.img'), data);
  fileHash = createHash('sha256').update(data).digest('hex');
  for (let d = 0; d < 20; d++) {
    const dir = path.join(fx.rootsTopFirst[1], `d${d}`);
    fs.mkdirSync(dir);
    for (let f = 0; f < 150; f++) fs.writeFileSync(path.join(dir, `f${f}`), '');
  }
  ref = { id: fx.layers[1].layerId };
});

after(async () => {
  for (const c of clients) c.close();
  for (const r of started) await r.stop('SIGKILL');
  fx?.cleanup();
});

describe('a resolver killed in the middle of a stream loses nothing for a retrying client', () => {
  test('Read: the rest of the file comes from the other resolver, byte-exact', async () => {
    const [a, b] = [await resolver(), await resolver()];
    const client = clientOf(a, b);
    const h = createHash('sha256');
    let n = 0;
    let total = 0;
    for await (const chunk of client.read(ref, '/big.img')) {
      h.update(chunk);
      total += chunk.length;
      if (++n === 4) {
        // Read on only once the resolver is dead: the stream is cut with most of the file still to come.
        a.child.kill('SIGKILL');
        await a.exit;
      }
    }
    assert.equal(total, 48 * MiB);
    assert.equal(h.digest('hex'), fileHash);
    assert.equal(a.child.signalCode ?? (await a.exit, a.child.signalCode), 'SIGKILL');
  });

  test('Walk: every entry exactly once, in order', async () => {
    const [a, b] = [await resolver(), await resolver()];
    const client = clientOf(a, b);
    const want: string[] = [];
    for await (const batch of new Projection(fx.rootsTopFirst).walk('/')) want.push(...batch.map((e) => e.path.toString()));
    const got: string[] = [];
    let batches = 0;
    for await (const batch of client.walk(ref, '/')) {
      got.push(...batch.map((e) => e.path.toString()));
      if (++batches === 2) {
        a.child.kill('SIGKILL');
        await a.exit;
      }
    }
    assert.equal(want.length, 1 + 20 * 151 + 3); // root, dirs and files, /base, /top, /big.img
    assert.deepEqual(got, want);
  });

  test('Session: requests in flight when a resolver dies are answered by another', async () => {
    const [a, b] = [await resolver(), await resolver()];
    const client = clientOf(a, b);
    const session = client.session({ deadlineMs: 5000 });
    const layer = { ref: { $case: 'id' as const, id: ref.id } };
    const results: Promise<unknown>[] = [];
    for (let i = 0; i < 2000; i++) {
      results.push(session.request({ $case: 'stat', stat: { layer, path: Buffer.from(`/d${i % 20}/f${i % 150}`) } }));
      if (i === 500) {
        // The stream is known to be serving (the first hundred are answered) and the rest is in flight when it dies.
        await Promise.all(results.slice(0, 100));
        a.child.kill('SIGKILL');
        await a.exit;
      }
    }
    const settled = await Promise.allSettled(results);
    const failed = settled.filter((s) => s.status === 'rejected');
    assert.deepEqual(failed, []);
    session.close();
  });

  test('every resolver down: Session requests fail with EIO after their deadline, then work again when one is back', async () => {
    const a = await resolver();
    const client = clientOf(a);
    const session = client.session({ deadlineMs: 400 });
    const layer = { ref: { $case: 'id' as const, id: ref.id } };
    await session.request({ $case: 'stat', stat: { layer, path: Buffer.from('/top') } });
    await a.stop('SIGKILL');
    const t0 = Date.now();
    await assert.rejects(session.request({ $case: 'stat', stat: { layer, path: Buffer.from('/top') } }), (e: { errno?: number }) => e.errno === 5);
    const waited = Date.now() - t0;
    assert.ok(waited >= 350 && waited < 2000, `failed after ${waited} ms`);
    const again = await startResolver({ store: fx.store, port: a.port });
    started.push(again);
    const res = await session.request({ $case: 'stat', stat: { layer, path: Buffer.from('/top') } }, {}, 5000);
    assert.equal(res.$case, 'stat');
    session.close();
  });

  test('SIGTERM drains: a Read in flight completes, then the process exits 0', async () => {
    const a = await resolver();
    const client = clientOf(a);
    const h = createHash('sha256');
    let n = 0;
    for await (const chunk of client.read(ref, '/big.img')) {
      h.update(chunk);
      if (++n === 2) {
        // Read on once the resolver has begun draining (it says so when a signal arrives), so the drain meets the Read in flight.
        a.child.kill('SIGTERM');
        await waitFor('the resolver to begin draining', () => (a.logs.some((l) => l.event === DRAIN_EVENT) ? true : undefined), 5_000);
      }
    }
    assert.equal(h.digest('hex'), fileHash);
    assert.equal(await a.exit, 0);
    assert.ok(a.logs.some((l) => l.event === 'shutdown.done'));
    assert.ok(!a.logs.some((l) => l.event === 'shutdown.force'), 'finished within the grace period');
  });
});
