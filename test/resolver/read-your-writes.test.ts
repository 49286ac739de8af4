import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { StrataClient } from '@strata/client';
import { startResolver, strata, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';

/**
 * Issue 23 item 10: a layer renamed or created through one replica is found
 * at once through another (a name or id miss re-reads the catalog before
 * it says ENOENT), not after the other's next refresh (every 500 ms).
 * Before the fix, `layer update --name X` then `layer get X` through the
 * other replica failed 6 of 6 times.
 */

describe('read-your-writes across replicas', () => {
  let fx: StoreFixture;
  let r1: ResolverProcess;
  let r2: ResolverProcess;
  let c1: StrataClient;
  let c2: StrataClient;

  before(async () => {
    fx = await makeStore([{ entries: [{ type: 'file', path: '/etc/hostname', content: 'base\n' }] }, { entries: [{ type: 'file', path: '/etc/motd', content: 'hi\n' }] }]);
    r1 = await startResolver({ store: fx.store });
    r2 = await startResolver({ store: fx.store });
    c1 = new StrataClient({ resolver: r1.address, deadlineMs: 5000 });
    c2 = new StrataClient({ resolver: r2.address, deadlineMs: 5000 });
  });

  after(async () => {
    c1?.close();
    c2?.close();
    await r1?.stop();
    await r2?.stop();
    fx?.cleanup();
  });

  test('rename through one replica, get (and read) by the new name through the other at once, 10 times', async () => {
    const id = fx.layers[1].layerId;
    // The other replica has the old name in view.
    await c2.getLayer({ id });
    for (let i = 0; i < 10; i++) {
      const name = `renamed-${i}-${Date.now()}`;
      await c1.updateLayer({ id }, { name });
      const got = await c2.getLayer({ name });
      assert.equal(got.layer.layerId, id, `rename ${i}`);
      assert.equal((await c2.readFile({ name }, '/etc/motd')).toString(), 'hi\n');
    }
  });

  test('create through one, get by id and by name through the other at once; the CLI the same way', async () => {
    for (let i = 0; i < 5; i++) {
      const made = await c1.createLayer({ source: fx.layers[1].source, base: { id: fx.layers[0].layerId }, name: `fresh-${i}` });
      assert.equal((await c2.getLayer({ id: made.layerId })).layer.name, `fresh-${i}`);
      assert.equal((await c2.getLayer({ name: `fresh-${i}` })).layer.layerId, made.layerId);
    }
    const update = strata(['--resolver', r1.address, 'layer', 'update', 'fresh-0', '--name', 'by-cli']);
    assert.equal(update.status, 0, update.stderr);
    const get = strata(['--resolver', r2.address, 'layer', 'get', 'by-cli', '--json']);
    assert.equal(get.status, 0, get.stderr);
  });

  test('a name nobody has is still NOT_FOUND (after one re-read), through either replica', async () => {
    for (const c of [c1, c2]) await assert.rejects(c.getLayer({ name: 'never-made' }), /does not exist/);
  });
});
