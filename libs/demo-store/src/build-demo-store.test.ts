import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog } from '@strata/layers';
import { DirSource, ImageSource, Projection } from '@strata/traversal';
import { buildDemoStore } from './index';

test('the demo store is a VM disk (qcow2 base and snapshot) with a dir: fix over it, and can be built twice', async () => {
  const store = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-demo-'));
  try {
    const first = await buildDemoStore(store);
    const again = await buildDemoStore(store);
    assert.equal(again.fixed.layerId, first.fixed.layerId);
    assert.equal(first.snapshot.source, 'qcow2:vm/snapshot-1.qcow2#2');
    const open = (image: string, overlayRules: boolean): Promise<ImageSource> =>
      ImageSource.open({ storeRoot: store, image, format: 'qcow2', partition: 2, overlayRules });
    const base = await open('vm/base.qcow2', false);
    const snap = await open('vm/snapshot-1.qcow2', true);
    assert.equal(snap.backingFile, path.join(await fs.realpath(store), 'vm/base.qcow2'));
    const baseView = new Projection([base]);
    assert.equal((await baseView.read('/etc/hostname', 0, 100)).data.toString(), 'demo-vm\n');
    assert.ok((await baseView.readdir('/var/log')).some((e) => e.name.toString() === 'boot.log'));
    const catalog = new Catalog(store);
    const fixed = new Projection([new DirSource(catalog.layerRoot(first.fixed)), snap]);
    assert.equal((await fixed.read('/etc/hostname', 0, 100)).data.toString(), 'demo-vm-snapshot-1\n');
    assert.equal((await fixed.read('/etc/ssh/sshd_config', 0, 100)).data.toString(), 'PermitRootLogin no\nPasswordAuthentication no\n');
    assert.deepEqual((await fixed.readdir('/opt/legacy')).map((e) => e.name.toString()), ['a.conf']);
    assert.deepEqual((await fixed.readdir('/var/log')).map((e) => e.name.toString()), []);
    assert.equal((await fixed.read('/etc/os-release', 0, 100)).data.toString(), 'NAME="strata demo"\nVERSION_ID="1"\n', 'unchanged files come from the backing file');
    // The snapshot file holds only the clusters the guest changed, not a copy of the disk.
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', path.join(store, 'vm/snapshot-1.qcow2')], { encoding: 'utf8' })) as { length: number; depth: number; data: boolean }[];
    const own = map.filter((e) => e.data && e.depth === 0).reduce((n, e) => n + e.length, 0);
    assert.ok(own > 0 && own < (64 << 20) / 16, `the snapshot holds ${own} bytes of the 64 MiB disk`);
    await Promise.all([base.close(), snap.close()]);
  } finally {
    await fs.rm(store, { recursive: true, force: true });
  }
});
