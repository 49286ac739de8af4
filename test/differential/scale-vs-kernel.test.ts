import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Projection } from '@strata/traversal';
import { canMountOverlay, mknod, mountOverlay, S_IFCHR, writeStack, type FixtureEntry, type LayerSpec } from '@strata/harness';
import { ALL_FIELDS, compareTrees, readEngineTree, readKernelTree } from '../support/tree-snapshot';

const skip = canMountOverlay() ? false : 'needs root and overlayfs to mount the kernel reference';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-scale-'));
const unmounts: (() => Promise<void>)[] = [];

after(async () => {
  for (const u of unmounts.reverse()) await u();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('engine against kernel overlayfs at scale', { skip }, () => {
  test('a chain of 128 layers with whiteouts and an opaque directory halfway', async () => {
    const layers: LayerSpec[] = [];
    for (let i = 0; i < 128; i++) {
      const entries: FixtureEntry[] = [
        { type: 'file', path: `/f${i}`, content: `layer ${i}\n` },
        { type: 'file', path: `/common/c${i}`, content: `c${i}` },
        { type: 'file', path: '/shadowed', content: `from layer ${i}` },
      ];
      if (i >= 2) entries.push({ type: 'whiteout', path: `/f${i - 2}` });
      if (i === 64) entries.push({ type: 'dir', path: '/common', opaque: true });
      if (i % 10 === 0) entries.push({ type: 'dir', path: `/d/sub${i}`, mode: 0o750 });
      layers.push({ entries });
    }
    const root = path.join(work, 'chain');
    const names = writeStack(root, layers, 'trusted');
    const mount = path.join(work, 'mnt-chain');
    unmounts.push(await mountOverlay(root, names, mount));
    const p = new Projection(names.map((n) => path.join(root, n)));
    const expected = readKernelTree(mount);
    assert.ok(expected.has('/common/c64') && !expected.has('/common/c63'), 'opaque directory cut the chain');
    assert.deepEqual(compareTrees(expected, await readEngineTree(p), ALL_FIELDS), []);
  });

  test('a merged directory of 100,000 entries', async () => {
    const root = path.join(work, 'wide');
    // Written directly: 100,000 entries through the fixture builder would only be slower.
    const lower = path.join(root, '0', 'big');
    const upper = path.join(root, '1', 'big');
    fs.mkdirSync(lower, { recursive: true });
    fs.mkdirSync(upper, { recursive: true });
    for (let i = 0; i < 60_000; i++) fs.writeFileSync(path.join(lower, `f${i}`), '');
    for (let i = 0; i < 45_000; i++) fs.writeFileSync(path.join(upper, `g${i}`), '');
    for (let i = 0; i < 5_000; i++) mknod(Buffer.from(path.join(upper, `f${i * 12}`)), S_IFCHR, 0n);
    const mount = path.join(work, 'mnt-wide');
    unmounts.push(await mountOverlay(root, ['1', '0'], mount));
    const p = new Projection([path.join(root, '1'), path.join(root, '0')]);
    const kernelNames = fs.readdirSync(path.join(mount, 'big')).sort();
    const entries = await p.readdir('/big');
    assert.equal(entries.length, 100_000);
    assert.deepEqual(
      entries.map((e) => e.name.toString()),
      kernelNames.slice().sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
    );
    for (let i = 0; i < entries.length; i += 997) {
      const e = entries[i];
      const st = fs.lstatSync(path.join(mount, 'big', e.name.toString()), { bigint: true });
      assert.equal(e.attr.ino, Number(st.ino));
      assert.equal(e.attr.mode, Number(st.mode));
    }
    // A single lookup in the wide directory must not list it.
    const t0 = process.hrtime.bigint();
    await p.stat('/big/g44999');
    const lookupNs = process.hrtime.bigint() - t0;
    const t1 = process.hrtime.bigint();
    await p.readdir('/big');
    const listNs = process.hrtime.bigint() - t1;
    console.log(`# wide dir: one lookup ${Number(lookupNs) / 1e6} ms, full readdir ${Number(listNs) / 1e6} ms`);
  });
});
