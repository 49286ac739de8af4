import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { startResolver, waitFor, type FixtureEntry, type LayerSpec, type LogLine, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';

/**
 * Two resolver processes on one store (issue 28 item 1): the first one's
 * full Walk of a sealed chain builds its metadata index in the store; the
 * second answers the same Walk from it without a traversal, the very same
 * batches a resolver without indexes gives. A changed chain is not
 * answered from the old index; a LIVE chain never has one.
 */

/** A few thousand entries over three layers, shaped like the benchmark's generated stack: whiteouts, opaque directories, links. */
function specs(dirs: number): LayerSpec[] {
  const base: FixtureEntry[] = [];
  const snap: FixtureEntry[] = [];
  const top: FixtureEntry[] = [];
  for (let d = 0; d < dirs; d++) {
    const dir = `/srv/d${String(d).padStart(4, '0')}`;
    for (let f = 0; f < 22; f++) base.push({ type: 'file', path: `${dir}/f${f}.dat`, content: `${d}/${f}` });
    base.push({ type: 'symlink', path: `${dir}/link`, target: `../d${String((d + 1) % dirs).padStart(4, '0')}/f1.dat` });
    if (d % 4 === 0) snap.push({ type: 'whiteout', path: `${dir}/f0.dat` }, { type: 'whiteout', path: `${dir}/f1.dat` });
    for (let f = 0; f < 3; f++) snap.push({ type: 'file', path: `${dir}/new${f}.dat`, content: 'n' });
    if (d % 20 === 0) {
      top.push({ type: 'dir', path: dir, opaque: true });
      for (let f = 0; f < 4; f++) top.push({ type: 'file', path: `${dir}/only${f}.dat`, content: 'o' });
    } else if (d % 2 === 0) {
      top.push({ type: 'file', path: `${dir}/top.dat`, content: 't' });
    }
  }
  base.push({ type: 'file', path: '/etc/name-\xff', content: 'x' });
  return [{ entries: base }, { entries: snap }, { entries: top }];
}

/**
 * Reading a symlink or directory moves its atime under relatime, and walks
 * compared across resolvers would differ in it: every atime is set ahead of
 * now and of its mtime, which relatime leaves alone.
 */
function freezeAtimes(dir: Buffer, ahead: number, depth = 0): void {
  for (const e of fs.readdirSync(dir, { encoding: 'buffer', withFileTypes: true })) {
    const p = Buffer.concat([dir, Buffer.from('/'), e.name]);
    if (e.isDirectory() && depth < 16) freezeAtimes(p, ahead, depth + 1);
    else fs.lutimesSync(p, ahead, 1_600_000_000);
  }
  fs.utimesSync(dir, ahead, 1_600_000_000);
}

type Batches = unknown[][];

async function walk(c: StrataClient, ref: { id: number }, p = '/', maxDepth = 0): Promise<Batches> {
  const out: Batches = [];
  for await (const batch of c.walk(ref, p, { includeLinkTargets: true, maxDepth })) out.push(batch);
  return out;
}

const indexEvents = (r: ResolverProcess, action?: string): LogLine[] =>
  r.logs.filter((l) => l.event === 'resolver.metadata_index' && (action === undefined || l.action === action));

let fx: StoreFixture;
let indexDir: string;
let top: { id: number };
let r1: ResolverProcess | undefined;
let r2: ResolverProcess | undefined;
let plain: ResolverProcess | undefined;
let c1: StrataClient;
let c2: StrataClient;
let cPlain: StrataClient;

before(async () => {
  fx = await makeStore(specs(300), 'trusted');
  fs.mkdirSync(path.join(fx.store, 'layers/extra/added'), { recursive: true });
  fs.writeFileSync(path.join(fx.store, 'layers/extra/added/file'), 'new');
  freezeAtimes(Buffer.from(path.join(fx.store, 'layers')), Math.floor(Date.now() / 1000) + 3600);
  indexDir = path.join(fx.store, '.strata/index');
  top = { id: fx.layers[fx.layers.length - 1].layerId };
  [r1, plain] = await Promise.all([startResolver({ store: fx.store }), startResolver({ store: fx.store, env: { STRATA_METADATA_INDEX: 'off' } })]);
  c1 = new StrataClient({ resolver: r1.address });
  cPlain = new StrataClient({ resolver: plain.address });
});

after(async () => {
  c1?.close();
  c2?.close();
  cPlain?.close();
  await Promise.all([r1?.stop(), r2?.stop(), plain?.stop()]);
  fx?.cleanup();
});

const idxFiles = (): string[] => (fs.existsSync(indexDir) ? fs.readdirSync(indexDir).filter((f) => f.endsWith('.idx')) : []);

describe('a metadata index per sealed chain, shared through the store', () => {
  test('the first resolver builds it; the second answers the same Walk from it, without traversing', async () => {
    const truth = await walk(cPlain, top);
    const entries = truth.flat().length;
    assert.ok(entries > 7000, `${entries} entries`);
    const t0 = performance.now();
    const first = await walk(c1, top);
    const firstMs = performance.now() - t0;
    assert.deepEqual(first, truth, 'the building walk is the plain one');
    const built = await waitFor('the index built', () => indexEvents(r1!, 'built')[0], 10_000);
    assert.equal(built.entries, entries);
    assert.equal(idxFiles().length, 1);

    r2 = await startResolver({ store: fx.store });
    c2 = new StrataClient({ resolver: r2.address });
    const t1 = performance.now();
    const second = await walk(c2, top);
    const secondMs = performance.now() - t1;
    assert.deepEqual(second, truth, 'same entries, attributes, order and batches');
    assert.equal(indexEvents(r2, 'loaded').length, 1);
    assert.equal(indexEvents(r2, 'served').length, 1);
    assert.equal(indexEvents(r2, 'built').length, 0);
    // Subtrees and depth limits from the same index, against the plain resolver.
    for (const [p, d] of [['/srv', 1], ['/srv/d0020', 0], ['/srv/d0021/link', 0], ['/', 2], ['/etc', 0]] as const) {
      assert.deepEqual(await walk(c2, top, p, d), await walk(cPlain, top, p, d), `${p} depth ${d}`);
    }
    assert.equal(indexEvents(r2, 'served').length, 6);
    // Stat and ReadDir of the sealed chain come from the same index.
    for (const p of ['/', '/srv/d0007', '/srv/d0040/only1.dat', '/srv/d0001/link', '/etc']) {
      assert.deepEqual(await c2.stat(top, p), await cPlain.stat(top, p), `stat ${p}`);
    }
    for (const p of ['/srv', '/srv/d0020', '/etc']) {
      assert.deepEqual(await c2.readDir(top, p), await cPlain.readDir(top, p), `readdir ${p}`);
    }
    console.log(`# cold walk of ${entries} entries: first resolver ${firstMs.toFixed(0)} ms (traversal + build), second ${secondMs.toFixed(0)} ms (index)`);
    // No metadata record was looked up on the second resolver: it never traversed.
    await r2.stop();
    const stopped = r2.logs.find((l) => l.event === 'resolver.stopped');
    assert.ok(stopped, 'stopped line');
    assert.deepEqual([stopped.misses, (stopped.hits as { memory: number }).memory], [0, 0]);
    c2.close();
    r2 = await startResolver({ store: fx.store });
    c2 = new StrataClient({ resolver: r2.address });
  });

  test('a changed chain is not answered from the old index: a new layer above, a new generation', async () => {
    const oldChain = indexEvents(r1!, 'built')[0].chain;
    const above = await c1.createLayer({ source: 'dir:layers/extra', base: top, name: 'above' });
    const got = await walk(c2, { id: above.layerId });
    assert.deepEqual(got, await walk(cPlain, { id: above.layerId }));
    assert.ok(got.flat().some((e) => Buffer.from((e as { path: Buffer }).path).toString() === '/added/file'));
    assert.equal(indexEvents(r2!, 'served').length, 0, 'nothing served from an index');
    const builtAbove = await waitFor('an index of the new chain', () => indexEvents(r2!, 'built')[0], 10_000);
    assert.notEqual(builtAbove.chain, oldChain);

    const before = (await c2.getLayer(top)).layer.generation;
    await c1.updateLayer(top, { mountOptions: ['read-only', 'no-exec'] });
    await waitFor('the new generation on the second resolver', async () => ((await c2.getLayer(top)).layer.generation > before ? true : undefined), 5000);
    // The chain's identity moved: its walk builds again instead of reading the old index.
    await waitFor('a walk of the new generation', async () => {
      await walk(c2, top);
      return indexEvents(r2!, 'built').some((l) => l.chain !== oldChain && l.chain !== builtAbove.chain) ? true : undefined;
    }, 10_000);
    assert.ok(indexEvents(r2!, 'served').every((l) => l.chain !== oldChain), 'the old index never served the new generation');
    assert.equal(idxFiles().length, 3);
  });

  test('a LIVE chain is never indexed nor answered from an index', async () => {
    const live = await c1.createLayer({ source: 'dir:layers/extra', base: top, mountOptions: ['live'] });
    const files = idxFiles().length;
    const events = indexEvents(r2!).length;
    for (let i = 0; i < 3; i++) {
      const got = await walk(c2, { id: live.layerId });
      assert.ok(got.flat().length > 7000);
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(idxFiles().length, files);
    assert.equal(indexEvents(r2!).length, events, 'no index event for the LIVE walks');
  });
});
