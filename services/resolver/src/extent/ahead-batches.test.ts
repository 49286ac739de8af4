import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog } from '@strata/layers';
import { Chains } from '../chains';
import { AheadBatches } from './ahead-batches';
import { ExtentMaps } from './extent-maps';

/** A store with one dir: layer "a": /t/d0 ... /t/d3, each with 5 small files, and a file at the root. */
async function withTree(fn: (maps: ExtentMaps, listed: string[], store: string) => Promise<void>): Promise<void> {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ahead-')));
  try {
    for (let d = 0; d < 4; d++) {
      fs.mkdirSync(path.join(store, `a/t/d${d}`), { recursive: true });
      for (let f = 0; f < 5; f++) fs.writeFileSync(path.join(store, `a/t/d${d}/f${f}`), `${d}/${f}`);
    }
    fs.writeFileSync(path.join(store, 'a/top'), 'top');
    const catalog = new Catalog(store);
    await catalog.init();
    await catalog.create({ source: 'dir:a', layerType: 'base', name: 'a' });
    const chains = new Chains(catalog);
    const listed: string[] = [];
    try {
      const view = await chains.view({ name: 'a' });
      const readdirNodes = view.projection.readdirNodes.bind(view.projection);
      view.projection.readdirNodes = (p) => {
        listed.push(String(p));
        return readdirNodes(p);
      };
      await fn(new ExtentMaps(() => Promise.resolve(view), store), listed, store);
    } finally {
      chains.close();
    }
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
}

const settle = (ms = 50): Promise<void> => new Promise((r) => setTimeout(r, ms));

test("a directory's first map makes the next directory's ahead; its call takes it (once), with the same answer a fresh listing gives", async () => {
  await withTree(async (maps, listed) => {
    const ref = { name: 'a' };
    await maps.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 128);
    await settle();
    // /t/d0 listed for its call, /t behind it (to find the next directories).
    assert.deepEqual(listed, ['/t/d0', '/t']);
    listed.length = 0;
    await maps.mapWithSiblings(ref, Buffer.from('/t/d1/f0'), 0, 0, 128);
    await settle();
    // /t/d1 listed for its call; /t/d2 made ahead, offered before the answer left; /t kept.
    assert.deepEqual(listed, ['/t/d1', '/t/d2']);
    listed.length = 0;
    const ahead = await maps.mapWithSiblings(ref, Buffer.from('/t/d2/f0'), 0, 0, 128);
    await settle();
    assert.ok(!listed.includes('/t/d2'), `d2's call listed it again: ${listed.join(' ')}`);
    assert.deepEqual(listed, ['/t/d3'], 'and d3 is made ahead behind it');
    assert.deepEqual(ahead.siblings.map((s) => s.path.toString()), ['/t/d2/f1', '/t/d2/f2', '/t/d2/f3', '/t/d2/f4']);
    // Taken: the same call again lists the directory afresh, and answers the same.
    listed.length = 0;
    const fresh = await maps.mapWithSiblings(ref, Buffer.from('/t/d2/f0'), 0, 0, 128);
    assert.ok(listed.includes('/t/d2'));
    assert.deepEqual(fresh, ahead);
    // A later file of a directory made ahead: its own map comes from the batch too, siblings wrap around.
    await settle();
    const mid = await maps.mapWithSiblings(ref, Buffer.from('/t/d3/f3'), 0, 0, 2);
    assert.deepEqual([mid.map.files[0].path, ...mid.siblings.map((s) => s.path.toString())], ['a/t/d3/f3', '/t/d3/f4', '/t/d3/f0']);
  });
});

test('nothing is made ahead for a window past the start, for the last directory, or for files of the root', async () => {
  await withTree(async (maps, listed) => {
    const ref = { name: 'a' };
    await maps.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 1, 0, 128);
    await maps.mapWithSiblings(ref, Buffer.from('/t/d3/f0'), 0, 0, 128);
    await maps.mapWithSiblings(ref, Buffer.from('/top'), 0, 0, 128);
    await maps.mapWithSiblings(ref, Buffer.from('/t/d2/f0'), 0, 0, 0);
    await settle();
    assert.deepEqual(listed.filter((p) => p !== '/t').sort(), ['/', '/t/d0', '/t/d3']);
  });
});

test('AheadBatches: bounded, one taker per batch, a failed batch is not there', async () => {
  const b = new AheadBatches();
  let made = 0;
  for (let i = 0; i < 20; i++) b.offer(`k${i}`, async () => (made++, { entries: [], maps: new Map() }));
  assert.ok(b.size <= 8);
  b.offer('k19', async () => (made++, { entries: [], maps: new Map() }));
  assert.equal(made, 20, 'a held key is not made again');
  assert.ok(await b.take('k19'));
  assert.equal(await b.take('k19'), undefined);
  b.offer('bad', () => Promise.reject(new Error('unreadable')));
  assert.equal(await b.take('bad'), undefined);
});
