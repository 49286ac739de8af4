import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog } from '@strata/layers';
import type { MergedEntry } from '@strata/traversal';
import { Chains, type ChainView } from '../chains';
import { AheadBatches } from './ahead-batches';
import { Errno, StrataError } from '@strata/errors';
import { ExtentMaps } from './extent-maps';

/** A store with one dir: layer "a": /t/d0 ... /t/d3, each with 5 small files, and a file at the root. */
async function withTree(fn: (maps: ExtentMaps, listed: string[], store: string, view: ChainView) => Promise<void>): Promise<void> {
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
      await fn(new ExtentMaps(() => Promise.resolve(view), store), listed, store, view);
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
  for (let i = 0; i < 200; i++) b.offer(`k${i}`, async () => (made++, { entries: [], maps: new Map() }));
  assert.ok(b.size <= 128);
  b.offer('k199', async () => (made++, { entries: [], maps: new Map() }));
  assert.equal(made, 200, 'a held key is not made again');
  assert.ok(await b.ahead('k199', async () => (made++, { entries: [], maps: new Map() })), 'ahead: the held batch, not taken');
  assert.ok(await b.take('k199'));
  assert.equal(await b.take('k199'), undefined);
  // Taken: its reader is past it, a walk ahead does not make it again (a call that holds it back does).
  b.offer('k199', async () => (made++, { entries: [], maps: new Map() }));
  assert.equal(await b.ahead('k199', async () => (made++, { entries: [], maps: new Map() })), undefined);
  assert.equal(made, 200);
  b.hold('k199', { entries: [], maps: new Map() });
  assert.ok(await b.take('k199'));
  // A batch heavier than all held together may be (its listing's entries and maps' runs) is not held: its call lists it.
  const heavy = { entries: new Array(300_000).fill({ name: Buffer.from('x') }) as MergedEntry[], maps: new Map() };
  b.hold('heavy', heavy);
  assert.equal(await b.take('heavy'), undefined);
  assert.equal(await b.ahead('heavy2', async () => heavy), heavy, 'the walk ahead that made it goes on with it');
  assert.equal(await b.take('heavy2'), undefined);
  b.offer('bad', () => Promise.reject(new Error('unreadable')));
  assert.equal(await b.take('bad'), undefined);
});

const paths = (m: { siblings: { path: Buffer }[] }): string[] => m.siblings.map((s) => s.path.toString());

test('beyondDirectory: the unused sibling count carries the next directories whole, each map equal to its own call; without it only the directory', async () => {
  await withTree(async (maps, listed, store, view) => {
    const ref = { name: 'a' };
    const fresh = new ExtentMaps(() => Promise.resolve(view), store);
    const all = await maps.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 128, true);
    const want = ['/t/d0/f1', '/t/d0/f2', '/t/d0/f3', '/t/d0/f4'];
    for (const d of [1, 2, 3]) for (let f = 0; f < 5; f++) want.push(`/t/d${d}/f${f}`);
    assert.deepEqual(paths(all), want);
    for (const s of all.siblings) assert.deepEqual(s.map, await fresh.map(ref, s.path, 0, 0), s.path.toString());
    // Whole directories only: 4 of d0 + 5 of d1 fit in 9, d2 does not fit in what is left of 11 (held for its own call).
    await settle();
    assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 9, true)), want.slice(0, 9));
    assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 11, true)), want.slice(0, 9));
    await settle();
    listed.length = 0;
    const d2 = await maps.mapWithSiblings(ref, Buffer.from('/t/d2/f0'), 0, 0, 4, true);
    assert.ok(!listed.includes('/t/d2'), 'the batch of d2 left out was held for its own call');
    assert.deepEqual(paths(d2), ['/t/d2/f1', '/t/d2/f2', '/t/d2/f3', '/t/d2/f4']);
    // Without the field (an older agent), or past the start: the directory's files only.
    assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 128)), want.slice(0, 4));
    assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 128, false)), want.slice(0, 4));
    assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 1, 0, 128, true)), want.slice(0, 4));
    // The last directory has none after it; a file of the root carries no directory, but the walk from the root is made ahead.
    assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/t/d3/f0'), 0, 0, 128, true)), ['/t/d3/f1', '/t/d3/f2', '/t/d3/f3', '/t/d3/f4']);
    const rooted = new ExtentMaps(() => Promise.resolve(view), store);
    assert.deepEqual(paths(await rooted.mapWithSiblings(ref, Buffer.from('/top'), 0, 0, 128, true)), []);
    await settle();
    listed.length = 0;
    assert.equal((await rooted.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 128, true)).siblings.length, 19);
    assert.deepEqual(listed, [], 'd0 and the directories after it made ahead behind the root file\'s answer');
  });
});

test('a walk asking beyondDirectory: one call per answer of 128, each answer made ahead behind the one before', async () => {
  await withTree(async (maps, listed) => {
    const ref = { name: 'a' };
    // A walk of 4 directories of 5 files with a budget of 9: d0 (4 + d1), then d2 (4 + d3).
    const first = await maps.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 9, true);
    assert.equal(first.siblings.length, 9);
    await settle();
    listed.length = 0;
    const second = await maps.mapWithSiblings(ref, Buffer.from('/t/d2/f0'), 0, 0, 9, true);
    assert.deepEqual(paths(second).slice(-5), ['/t/d3/f0', '/t/d3/f1', '/t/d3/f2', '/t/d3/f3', '/t/d3/f4']);
    assert.deepEqual(listed, [], 'd2 and d3 were made ahead behind the first answer');
  });
});

test('beyondDirectory: a LIVE chain is refused as before, and the grant is the call\'s (checked before anything is listed)', async () => {
  await withTree(async (_maps, listed, store, view) => {
    const ref = { name: 'a' };
    const live = new ExtentMaps(() => Promise.resolve({ ...view, ttlMs: 1000 }), store);
    await assert.rejects(live.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 128, true), (e: unknown) => e instanceof StrataError && /LIVE/.test(e.message));
    const asked: unknown[] = [];
    const denied = new ExtentMaps((r) => {
      asked.push(r);
      return Promise.reject(new StrataError(Errno.EACCES, 'no read on layer a'));
    }, store);
    await assert.rejects(denied.mapWithSiblings(ref, Buffer.from('/t/d0/f0'), 0, 0, 128, true), (e: unknown) => e instanceof StrataError && e.errno === Errno.EACCES);
    assert.deepEqual(asked, [ref]);
    await settle();
    assert.deepEqual(listed, []);
  });
});

/** A store with one dir: layer "w" laid out for a walk: subdirectories at several depths, files beside them. */
async function withWalkTree(fn: (maps: ExtentMaps, listed: string[]) => Promise<void>): Promise<void> {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-walk-')));
  try {
    const files: Record<string, string[]> = {
      'w/a': ['f0', 'f1', 'f2'],
      'w/a/0early': ['e0'],
      'w/a/s1': ['g0', 'g1'],
      'w/a/s1/deep': ['h0'],
      'w/a/s2': ['i0', 'i1'],
      'w/b': ['j0'],
      'w/b/empty-of-files/only': ['k0'],
      x: ['l0', 'l1'],
    };
    for (const [dir, names] of Object.entries(files)) {
      fs.mkdirSync(path.join(store, 'l', dir), { recursive: true });
      for (const n of names) fs.writeFileSync(path.join(store, 'l', dir, n), `${dir}/${n}`);
    }
    const catalog = new Catalog(store);
    await catalog.init();
    await catalog.create({ source: 'dir:l', layerType: 'base', name: 'l' });
    const chains = new Chains(catalog);
    const listed: string[] = [];
    try {
      const view = await chains.view({ name: 'l' });
      const readdirNodes = view.projection.readdirNodes.bind(view.projection);
      view.projection.readdirNodes = (p) => {
        listed.push(String(p));
        return readdirNodes(p);
      };
      await fn(new ExtentMaps(() => Promise.resolve(view), store), listed);
    } finally {
      chains.close();
    }
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
}

test('beyondDirectory follows a walk of the tree in order: the directory\'s files after the one asked, its subdirectories (deepest first), then up the tree', async () => {
  await withWalkTree(async (maps) => {
    const ref = { name: 'l' };
    const all = await maps.mapWithSiblings(ref, Buffer.from('/w/a/f0'), 0, 0, 128, true);
    // Every subdirectory, 0early too (the file asked may be an answer's last, asked for the one after). A directory without files is passed over.
    assert.deepEqual(paths(all), ['/w/a/f1', '/w/a/f2', '/w/a/0early/e0', '/w/a/s1/g0', '/w/a/s1/g1', '/w/a/s1/deep/h0', '/w/a/s2/i0', '/w/a/s2/i1', '/w/b/j0', '/w/b/empty-of-files/only/k0', '/x/l0', '/x/l1']);
    // Whole directories while they fit: f1 f2, 0early (1), s1 (2), not deep (0 left of 5) — held for its own call.
    await settle();
    assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/w/a/f0'), 0, 0, 5, true)), ['/w/a/f1', '/w/a/f2', '/w/a/0early/e0', '/w/a/s1/g0', '/w/a/s1/g1']);
    // From deep in the tree, up: deep has nothing after h0 and no subdirectories, s1 nothing after deep, a: s2, then b...
    await settle();
    assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/w/a/s1/deep/h0'), 0, 0, 3, true)), ['/w/a/s2/i0', '/w/a/s2/i1', '/w/b/j0']);
    // At the end of the tree: nothing after.
    assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/x/l1'), 0, 0, 128, true)), []);
  });
});

test('a walk asking beyondDirectory finds its next answer made ahead (subdirectories and all) behind the one before', async () => {
  await withWalkTree(async (maps, listed) => {
    const ref = { name: 'l' };
    const first = await maps.mapWithSiblings(ref, Buffer.from('/w/a/f0'), 0, 0, 5, true);
    assert.deepEqual(paths(first), ['/w/a/f1', '/w/a/f2', '/w/a/0early/e0', '/w/a/s1/g0', '/w/a/s1/g1']);
    await settle();
    listed.length = 0;
    const second = await maps.mapWithSiblings(ref, Buffer.from('/w/a/s1/deep/h0'), 0, 0, 4, true);
    assert.deepEqual(paths(second), ['/w/a/s2/i0', '/w/a/s2/i1', '/w/b/j0', '/w/b/empty-of-files/only/k0']);
    assert.deepEqual(listed, [], 'deep, s2, b and what is below b were made ahead behind the first answer');
    // The maps made ahead are the maps a fresh call gives.
    await settle();
    const fresh = await maps.mapWithSiblings(ref, Buffer.from('/w/a/s2/i0'), 0, 0, 0);
    assert.deepEqual(second.siblings[0].map, fresh.map);
  });
});

test('beyondDirectory: a directory larger than what is left of a large count fills it with its first files; the answer asked by the last of them goes on in it', async () => {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-partial-')));
  try {
    const names = (n: number, p: string): string[] => Array.from({ length: n }, (_, i) => `${p}${String(i).padStart(3, '0')}`);
    for (const [dir, files] of [['p/a', names(3, 'a')], ['p/b', names(300, 'b')], ['p/c', names(2, 'c')]] as const) {
      fs.mkdirSync(path.join(store, 'l', dir), { recursive: true });
      for (const f of files) fs.writeFileSync(path.join(store, 'l', dir, f), f);
    }
    const catalog = new Catalog(store);
    await catalog.init();
    await catalog.create({ source: 'dir:l', layerType: 'base', name: 'l' });
    const chains = new Chains(catalog);
    try {
      const maps = new ExtentMaps((r) => chains.view(r), store);
      const ref = { name: 'l' };
      const first = paths(await maps.mapWithSiblings(ref, Buffer.from('/p/a/a000'), 0, 0, 128, true));
      assert.deepEqual(first, ['/p/a/a001', '/p/a/a002', ...names(126, '/p/b/b')]);
      await settle();
      const next = paths(await maps.mapWithSiblings(ref, Buffer.from(first[first.length - 1]), 0, 0, 256, true));
      assert.deepEqual(next, [...names(300, '/p/b/b').slice(126), '/p/c/c000', '/p/c/c001']);
      // Little left of the count: the large directory is held for its own call, as before.
      await settle();
      assert.deepEqual(paths(await maps.mapWithSiblings(ref, Buffer.from('/p/a/a000'), 0, 0, 40, true)), ['/p/a/a001', '/p/a/a002']);
    } finally {
      chains.close();
    }
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
});

test('beyondDirectory: an answer makes a few directories itself at most, the walk ahead behind it the rest (the reader gets its first answer sooner)', async () => {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-made-')));
  try {
    const dirs = Array.from({ length: 20 }, (_, i) => `d${String(i).padStart(2, '0')}`);
    for (const d of dirs) {
      fs.mkdirSync(path.join(store, 'l/t', d), { recursive: true });
      fs.writeFileSync(path.join(store, 'l/t', d, 'f'), d);
    }
    const catalog = new Catalog(store);
    await catalog.init();
    await catalog.create({ source: 'dir:l', layerType: 'base', name: 'l' });
    const chains = new Chains(catalog);
    try {
      const view = await chains.view({ name: 'l' });
      const listed: string[] = [];
      const readdirNodes = view.projection.readdirNodes.bind(view.projection);
      view.projection.readdirNodes = (p) => {
        listed.push(String(p));
        return readdirNodes(p);
      };
      const maps = new ExtentMaps(() => Promise.resolve(view), store);
      const first = paths(await maps.mapWithSiblings({ name: 'l' }, Buffer.from('/t/d00/f'), 0, 0, 128, true));
      assert.ok(first.length >= 2 && first.length < dirs.length - 1, `a few directories: ${first.join(' ')}`);
      assert.deepEqual(first, dirs.slice(1, 1 + first.length).map((d) => `/t/${d}/f`));
      await settle(200);
      listed.length = 0;
      const next = paths(await maps.mapWithSiblings({ name: 'l' }, Buffer.from(first[first.length - 1]), 0, 0, 128, true));
      assert.deepEqual(next, dirs.slice(1 + first.length).map((d) => `/t/${d}/f`), 'the rest, made ahead');
      assert.deepEqual(listed.filter((p) => p.startsWith('/t/d')), [first[first.length - 1].slice(0, -2)], 'only the asked file\'s own directory listed for it');
    } finally {
      chains.close();
    }
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
});
