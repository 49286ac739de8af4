import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { HAVE_REDIS, redisCli, startRedis, startRedisCluster, startResolver, waitFor, type RedisProcess, type ResolverProcess } from '@strata/harness';
import { mainStack } from '../support/main-fixture';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { apiTreeSource } from '../support/api-tree-source';
import { ALL_FIELDS, compareTrees, readEngineTree } from '../support/tree-snapshot';

const skip = HAVE_REDIS ? false : 'needs redis-server (deploy/install-deps.sh installs it)';

let fx: StoreFixture;
let redis: RedisProcess;
let r1: ResolverProcess;
let r2: ResolverProcess;
let c1: StrataClient;
let c2: StrataClient;

before(async () => {
  if (skip) return;
  fx = await makeStore(mainStack(), 'trusted');
  redis = await startRedis();
  r1 = await startResolver({ store: fx.store, redis: redis.url });
  r2 = await startResolver({ store: fx.store, redis: redis.url });
  c1 = new StrataClient({ resolver: r1.address });
  c2 = new StrataClient({ resolver: r2.address });
});

after(async () => {
  c1?.close();
  c2?.close();
  await r1?.stop();
  await r2?.stop();
  await redis?.stop();
  fx?.cleanup();
});

describe('stateless replicas sharing one store and one Redis', { skip }, () => {
  test('two resolvers give identical answers; the second finds what the first cached in Redis', async () => {
    const ref = { id: fx.layers[fx.layers.length - 1].layerId };
    const a = await readEngineTree(apiTreeSource(c1, ref));
    assert.ok(Number(redisCli(redis.port, 'dbsize')) > 0, 'the first resolver filled Redis');
    const b = await readEngineTree(apiTreeSource(c2, ref));
    assert.deepEqual(compareTrees(a, b, ALL_FIELDS), []);
    assert.ok(a.size > 10);
  });

  test('a layer created through one is visible through the other within one second', async () => {
    const started = Date.now();
    const created = await c1.createLayer({ source: 'dir:layers/1', base: { id: fx.layers[0].layerId }, name: 'fresh' });
    const seen = await waitFor('layer on the other replica', async () => c2.getLayer({ name: 'fresh' }).catch(() => undefined), 3000);
    const elapsed = Date.now() - started;
    assert.equal(seen.layer.layerId, created.layerId);
    assert.ok(elapsed < 1000, `visible after ${elapsed} ms`);
    await c2.deleteLayer({ name: 'fresh' });
  });

  test('a LIVE layer shows a change within one second through both tiers', async () => {
    const liveDir = path.join(fx.store, 'live');
    fs.mkdirSync(liveDir, { recursive: true });
    fs.writeFileSync(path.join(liveDir, 'state'), 'one');
    const live = await c1.createLayer({ source: 'dir:live', base: { id: fx.layers[0].layerId }, mountOptions: ['live'] });
    const first = await waitFor('the live layer on the other replica', async () => c2.stat({ id: live.layerId }, '/state').catch(() => undefined), 3000);
    assert.equal(first.size, 3);
    await assert.rejects(c2.stat({ id: live.layerId }, '/added'));
    const changed = Date.now();
    fs.writeFileSync(path.join(liveDir, 'state'), 'three');
    fs.writeFileSync(path.join(liveDir, 'added'), 'x');
    await waitFor('the change', async () => ((await c2.stat({ id: live.layerId }, '/state')).size === 5 ? true : undefined), 3000);
    await waitFor('the new file', async () => c2.stat({ id: live.layerId }, '/added').catch(() => undefined), 3000);
    assert.equal((await c2.readFile({ id: live.layerId }, '/state')).toString(), 'three');
    const elapsed = Date.now() - changed;
    assert.ok(elapsed < 1000, `change visible after ${elapsed} ms`);
  });

  test('Redis killed: requests still succeed with one warning; Redis back: used again without a restart', async () => {
    const ref = { id: fx.layers[1].layerId };
    await redis.stop();
    for (let i = 0; i < 20; i++) {
      assert.equal((await c1.stat(ref, '/etc/hostname')).nlink >= 1, true);
      await assert.rejects(c1.stat(ref, `/missing-${i}`), (e: { code?: number }) => e.code === 5);
    }
    const down = await waitFor('a warning', () => r1.logs.find((l) => l.event === 'cache.redis.down'));
    assert.equal(down.level, 'warn');
    assert.equal(r1.logs.filter((l) => l.event === 'cache.redis.down').length, 1, 'one warning per outage');
    await redis.restart();
    await waitFor('reconnection', () => r1.logs.find((l) => l.event === 'cache.redis.up'), 10_000);
    await c1.stat(ref, '/etc/ssh');
    await c1.stat(ref, '/never-seen-before').catch(() => undefined);
    await waitFor('new keys in Redis', () => (Number(redisCli(redis.port, 'dbsize')) > 0 ? true : undefined), 3000);
  });

  test('Redis Cluster URL: keys spread over the cluster and answers match', async () => {
    const cluster = await startRedisCluster();
    const r3 = await startResolver({ store: fx.store, redis: cluster.url });
    const c3 = new StrataClient({ resolver: r3.address });
    try {
      const ref = { id: fx.layers[fx.layers.length - 1].layerId };
      await waitFor('cluster connection', () => r3.logs.find((l) => l.event === 'cache.redis.down') ? undefined : true);
      const a = await readEngineTree(apiTreeSource(c3, ref), false);
      const b = await readEngineTree(apiTreeSource(c1, ref), false);
      assert.deepEqual(compareTrees(b, a, ALL_FIELDS.filter((f) => f !== 'content')), []);
      const perNode = cluster.nodes.map((n) => Number(redisCli(n.port, 'dbsize')));
      assert.ok(perNode.filter((n) => n > 0).length >= 2, `keys per node: ${perNode.join(', ')}`);
    } finally {
      c3.close();
      await r3.stop();
      await cluster.stop();
    }
  });
});
