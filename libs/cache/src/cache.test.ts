import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryCache } from './memory-cache';
import { TieredCache } from './tiered-cache';
import { chainKey, recordKey } from './keys';
import { spawn, spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { REST_MS, RedisCache, parseClusterNodes } from './redis-cache';
import type { CacheHit, MetadataCache } from './metadata-cache';

test('the in-process tier is bounded by bytes and evicts the least recently used', async () => {
  const c = new MemoryCache(10_000);
  for (let i = 0; i < 100; i++) await c.set(`k${i}`, Buffer.alloc(500));
  assert.ok(c.size <= 10_000, `size ${c.size}`);
  assert.equal(await c.get('k0'), undefined);
  assert.ok(await c.get('k99'));
  await c.set('huge', Buffer.alloc(20_000));
  assert.equal(await c.get('huge'), undefined, 'a value bigger than the cache is not kept');
});

/** A clock the test moves by hand: ttls are checked without waiting for them. */
function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('entries with a ttl expire; entries without stay', async () => {
  const clock = manualClock();
  const c = new MemoryCache(1 << 20, { now: clock.now });
  await c.set('live', Buffer.from('x'), 30);
  await c.set('sealed', Buffer.from('y'));
  clock.advance(29);
  assert.equal((await c.get('live'))?.value.toString(), 'x', 'still there just before its ttl');
  clock.advance(31);
  assert.equal(await c.get('live'), undefined);
  assert.equal((await c.get('sealed'))?.value.toString(), 'y');
});

test('the tiered cache answers near first, copies far hits near with the caller ttl', async () => {
  const farStore = new Map<string, Buffer>();
  const far: MetadataCache = {
    get: async (k): Promise<CacheHit | undefined> => (farStore.has(k) ? { value: farStore.get(k) as Buffer, tier: 'redis' } : undefined),
    set: async (k, v) => void farStore.set(k, v),
    close: async () => undefined,
  };
  const clock = manualClock();
  const near = new MemoryCache(1 << 20, { now: clock.now });
  const t = new TieredCache(near, far);
  farStore.set('a', Buffer.from('A'));
  assert.equal((await t.get('a', 30))?.tier, 'redis');
  assert.equal((await t.get('a', 30))?.tier, 'memory');
  clock.advance(60);
  farStore.delete('a');
  assert.equal(await t.get('a', 30), undefined, 'the near copy of a LIVE value expired with it');
  await t.set('b', Buffer.from('B'));
  assert.equal(farStore.get('b')?.toString(), 'B');
});

test('chain keys change with any generation and keep paths byte-exact', () => {
  const a = chainKey([{ layerId: 2, generation: 1 }, { layerId: 1, generation: 1 }]);
  assert.notEqual(a, chainKey([{ layerId: 2, generation: 2 }, { layerId: 1, generation: 1 }]));
  assert.notEqual(a, chainKey([{ layerId: 1, generation: 1 }, { layerId: 2, generation: 1 }]));
  const k = recordKey(a, 'n', Buffer.from([0x2f, 0xff, 0x00]));
  assert.deepEqual(Buffer.from(k, 'latin1').subarray(-3), Buffer.from([0x2f, 0xff, 0x00]));
});

test('cluster URLs list their seed nodes', () => {
  assert.deepEqual(parseClusterNodes('redis+cluster://10.0.0.1:7000,10.0.0.2:7001'), [
    { host: '10.0.0.1', port: 7000 },
    { host: '10.0.0.2', port: 7001 },
  ]);
  assert.deepEqual(parseClusterNodes('redis+cluster://user:pw@h1,[::1]:7002'), [
    { host: 'h1', port: 6379 },
    { host: '::1', port: 7002 },
  ]);
  assert.throws(() => parseClusterNodes('redis+cluster://h:99999'));
});

/** A free loopback port (listen on 0, note it, close). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;

test('a Redis that takes commands but never answers costs one timeout per rest, not one per miss', { skip: HAVE_REDIS ? false : 'needs redis-server' }, async () => {
  // A real Redis, stopped: the kernel still accepts connections and commands, nothing answers (as a Redis Cluster missing a master retries CLUSTERDOWN).
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const lines: string[] = [];
  const event = (o: object): number => lines.push(String((o as { event?: string }).event));
  const cache = new RedisCache(`redis://127.0.0.1:${port}`, { log: { info: event, warn: event }, commandTimeoutMs: 200 });
  try {
    await new Promise<void>((r) => cache.client.once('ready', () => r()));
    await cache.set('k', Buffer.from('v'));
    assert.equal((await cache.get('k'))?.value.toString(), 'v');
    // The connection may have been refused once while redis-server started: only what follows counts.
    const seen = lines.length;
    redis.kill('SIGSTOP');
    const asked = (): number => (cache.client as unknown as { commandQueue: { length: number } }).commandQueue.length;
    assert.equal(await cache.get('a'), undefined, 'the first miss waits for the timeout');
    assert.deepEqual(lines.slice(seen), ['cache.redis.down']);
    const before = asked();
    for (let i = 0; i < 20; i++) assert.equal(await cache.get(`k${i}`), undefined);
    await cache.set('k2', Buffer.from('v'));
    assert.equal(asked(), before, 'nothing sent to Redis while resting');
    redis.kill('SIGCONT');
    await new Promise((r) => setTimeout(r, REST_MS + 50));
    assert.equal((await cache.get('k'))?.value.toString(), 'v', 'asked again after the rest, and answered');
    assert.deepEqual(lines.slice(seen), ['cache.redis.down', 'cache.redis.up']);
  } finally {
    await cache.close();
    redis.kill('SIGCONT');
    redis.kill('SIGKILL');
  }
});
