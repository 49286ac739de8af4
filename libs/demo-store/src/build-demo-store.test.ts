import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog } from '@strata/layers';
import { Projection } from '@strata/traversal';
import { buildDemoStore } from './index';

test('the demo store shows whiteouts and an opaque directory, and can be built twice', async () => {
  const store = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-demo-'));
  const first = await buildDemoStore(store);
  const again = await buildDemoStore(store);
  assert.equal(again.snapshot2.layerId, first.snapshot2.layerId);
  const catalog = new Catalog(store);
  const p = new Projection((await catalog.chain({ id: first.snapshot2.layerId })).map((l) => catalog.layerRoot(l)));
  assert.deepEqual((await p.readdir('/opt/legacy')).map((e) => e.name.toString()), ['c.conf']);
  assert.deepEqual((await p.readdir('/var/log')).map((e) => e.name.toString()), []);
  assert.equal((await p.read('/etc/hostname', 0, 100)).data.toString(), 'demo-snapshot-1\n');
  await fs.rm(store, { recursive: true, force: true });
});
