import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryCache } from '@strata/cache';
import { isStrataError } from '@strata/errors';
import { Catalog, type LayerRef } from '@strata/layers';
import { ReadDirResponse, StatResponse, WalkResponse } from '@strata/protocol';
import type { Logger } from '@strata/telemetry';
import { Chains } from '../chains';
import { wireErrorInfo } from '../grpc/wire-error';
import { ProjectionOps } from '../projection-ops';
import { parseIndex } from './index-format';

interface Fixture {
  store: string;
  catalog: Catalog;
  indexDir: string;
  top: LayerRef;
}

/**
 * Reading a directory moves its atime under relatime (atime <= mtime), and
 * walks compared across processes would then differ in it: every atime is
 * set ahead of its mtime and of now, which relatime leaves alone.
 */
function freezeAtimes(dir: string | Buffer, depth = 0): void {
  const ahead = Math.floor(Date.now() / 1000) + 3600;
  const d = Buffer.from(dir);
  // Names as bytes: the fixture has a name that is not UTF-8.
  for (const e of fs.readdirSync(d, { encoding: 'buffer', withFileTypes: true })) {
    const p = Buffer.concat([d, Buffer.from('/'), e.name]);
    if (e.isDirectory() && depth < 16) freezeAtimes(p, depth + 1);
    else fs.lutimesSync(p, ahead, 1_600_000_000);
  }
  fs.utimesSync(d, ahead, 1_600_000_000);
}

/** Two dir: layers: names that sort around "/", a non-UTF-8 name, links (one to a directory), a whiteout, an opaque directory. */
async function makeStore(): Promise<Fixture> {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-mindex-unit-')));
  const base = path.join(store, 'layers/0');
  const top = path.join(store, 'layers/1');
  const file = (p: string, content = 'x'): void => {
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  };
  for (let d = 0; d < 12; d++) for (let f = 0; f < 60; f++) file(path.join(base, `srv/d${d}/f${f}`), 'y'.repeat(f));
  file(path.join(base, 'a/b/c/deep'));
  file(path.join(base, 'a-b/file'));
  file(path.join(base, 'a/f1'), 'one');
  fs.mkdirSync(path.join(base, 'empty'));
  fs.writeFileSync(Buffer.from(path.join(base, 'a/name-\xff'), 'latin1'), 'latin1');
  fs.symlinkSync('a', path.join(base, 'lnk'));
  fs.symlinkSync('/etc/passwd', path.join(base, 'a/abs'));
  fs.linkSync(path.join(base, 'a/f1'), path.join(base, 'a/hard'));
  file(path.join(top, 'a/.wh.f1'), '');
  file(path.join(top, 'srv/d3/.wh..wh..opq'), '');
  file(path.join(top, 'srv/d3/only'), 'top');
  file(path.join(top, 'srv/d4/f0'), 'replaced');
  freezeAtimes(path.join(store, 'layers'));
  const catalog = new Catalog(store);
  await catalog.init();
  const b = await catalog.create({ source: 'dir:layers/0', layerType: 'base', name: 'base' });
  const t = await catalog.create({ source: 'dir:layers/1', layerType: 'snapshot', name: 'top', base: { id: b.layerId } });
  return { store, catalog, indexDir: path.join(store, '.strata/index'), top: { id: t.layerId } };
}

interface Captured {
  log: Logger;
  lines: Record<string, unknown>[];
}

function capture(): Captured {
  const lines: Record<string, unknown>[] = [];
  const at = (level: string) => (o: object) => void lines.push({ level, ...o });
  return { log: { info: at('info'), warn: at('warn'), debug: at('debug'), error: at('error') } as unknown as Logger, lines };
}

function opsOf(fx: Fixture, metadataIndex: boolean, log?: Logger): ProjectionOps {
  return new ProjectionOps(new Chains(fx.catalog), new MemoryCache(64 << 20), { metadataIndex, metadataIndexDir: fx.indexDir, ...(log ? { log } : {}) });
}

/** A Walk as the wire carries it: every message's bytes, or the error it ends with. */
async function wire(ops: ProjectionOps, ref: LayerRef, p: string, maxDepth: number, links: boolean): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const batch of ops.walk(ref, Buffer.from(p, 'latin1'), maxDepth, links)) {
      const msg = WalkResponse.encode({
        entries: batch.map((e) =>
          'error' in e
            ? { path: e.path, attr: undefined, linkTarget: Buffer.alloc(0), error: wireErrorInfo(e.error) }
            : { path: e.path, attr: e.attr, linkTarget: e.linkTarget ?? Buffer.alloc(0) },
        ),
      }).finish();
      out.push(Buffer.from(msg).toString('base64'));
    }
  } catch (err) {
    out.push(isStrataError(err) ? `error ${err.errno} ${err.message}` : `thrown ${String(err)}`);
  }
  return out;
}

const CASES: [string, number, boolean][] = [];
for (const p of ['/', '/a', '/a/b', '//a/./b/', '/srv', '/srv/d3', '/lnk', '/lnk/b', '/a/f1', '/a/hard', '/missing', '/a/abs/x', '', 'rel', '/empty'])
  for (const d of [0, 1, 2]) for (const l of [true, false]) CASES.push([p, d, l]);

/** Waits for the builds behind the walks, then checks. */
async function until(ops: ProjectionOps, what: string, ok: () => boolean): Promise<void> {
  await ops.indexes!.idle();
  assert.ok(ok(), what);
}

/** Two walks' messages compared, the first difference decoded (a base64 dump of thousands of entries says nothing). */
function sameWire(got: string[], want: string[], what: string): void {
  const decode = (m: string): unknown =>
    m.startsWith('error') ? m : WalkResponse.decode(Buffer.from(m, 'base64')).entries.map((e) => ({ ...e, path: e.path.toString('latin1'), linkTarget: e.linkTarget.toString('latin1') }));
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] === want[i]) continue;
    const g = got[i] === undefined ? 'none' : decode(got[i]);
    const w = want[i] === undefined ? 'none' : decode(want[i]);
    assert.deepEqual(g, w, `${what}: message ${i} of ${want.length} (got ${got.length})`);
    assert.fail(`${what}: message ${i} differs in bytes only`);
  }
}

async function withFixture(fn: (fx: Fixture) => Promise<void>): Promise<void> {
  const fx = await makeStore();
  try {
    await fn(fx);
  } finally {
    fs.rmSync(fx.store, { recursive: true, force: true });
  }
}

test('walks answered from the index are byte-for-byte the walks by traversal; a second resolver reads the index without traversing', async () => {
  await withFixture(async (fx) => {
    const reference = opsOf(fx, false);
    const first = opsOf(fx, true);
    const want = await Promise.all(CASES.map(([p, d, l]) => wire(reference, fx.top, p, d, l)));
    // Built from a walk without link targets: the index fetches them itself (the cases with targets below check them).
    assert.deepEqual(CASES[1], ['/', 0, false]);
    sameWire(await wire(first, fx.top, '/', 0, false), want[1], 'the building walk');
    await until(first, 'index built', () => first.indexes!.counters.built === 1);
    assert.equal(fs.readdirSync(fx.indexDir).filter((f) => f.endsWith('.idx')).length, 1);
    for (let i = 0; i < CASES.length; i++) sameWire(await wire(first, fx.top, ...CASES[i]), want[i], `case ${JSON.stringify(CASES[i])} on the builder`);
    assert.ok(first.indexes!.counters.served >= 20, `served ${first.indexes!.counters.served}`);

    const second = opsOf(fx, true);
    sameWire(await wire(second, fx.top, '/', 0, true), want[0], 'walk');
    assert.deepEqual({ ...second.indexes!.counters }, { served: 1, traversed: 0, lookups: 0, built: 0, loaded: 1, rejected: 0, abandoned: 0 });
    assert.equal(second.counters.misses + second.counters.hits.memory, 0, 'no metadata record was looked up: nothing traversed');
    for (let i = 0; i < CASES.length; i++) sameWire(await wire(second, fx.top, ...CASES[i]), want[i], `case ${JSON.stringify(CASES[i])} from the store`);
    // Paths the index does not hold literally (through a symlink, missing, invalid) went to traversal.
    assert.ok(second.indexes!.counters.traversed > 0);
    for (const o of [reference, first, second]) o.close();
  });
});

test('a corrupt, truncated or foreign index file is ignored with one log line, answered by traversal, and rebuilt', async () => {
  await withFixture(async (fx) => {
    const reference = opsOf(fx, false);
    const want = await wire(reference, fx.top, '/', 0, true);
    const builder = opsOf(fx, true);
    await wire(builder, fx.top, '/', 0, true);
    await until(builder, 'index built', () => builder.indexes!.counters.built === 1);
    const file = builder.indexes!.store.fileOf((await builder.view(fx.top)).key);
    const good = fs.readFileSync(file);
    // Another chain's index under this chain's name.
    const other = await fx.catalog.create({ source: 'dir:layers/1', layerType: 'base', name: 'other' });
    await wire(builder, { id: other.layerId }, '/', 0, true);
    await until(builder, 'second index built', () => builder.indexes!.counters.built === 2);
    const foreign = fs.readFileSync(builder.indexes!.store.fileOf((await builder.view({ id: other.layerId })).key));
    const flipped = Buffer.from(good);
    flipped[good.length >> 1] ^= 1;
    for (const [what, bytes, reason] of [
      ['flipped byte', flipped, 'checksum'],
      ['truncated', good.subarray(0, good.length - 100), 'corrupt'],
      ['foreign', foreign, 'foreign'],
      ['garbage', Buffer.from('not an index at all'), 'foreign'],
    ] as const) {
      fs.writeFileSync(file, bytes);
      const c = capture();
      const ops = opsOf(fx, true, c.log);
      sameWire(await wire(ops, fx.top, '/', 0, true), want, what);
      sameWire(await wire(ops, fx.top, '/a', 0, true), await wire(reference, fx.top, '/a', 0, true), what);
      await until(ops, `${what}: rebuilt`, () => ops.indexes!.counters.built === 1);
      const ignored = c.lines.filter((l) => l.action === 'ignored');
      assert.equal(ignored.length, 1, `${what}: one line`);
      assert.equal(ignored[0].reason, reason, what);
      assert.equal(ignored[0].level, 'warn');
      assert.ok(fs.readFileSync(file).equals(good), `${what}: the file is good again`);
      parseIndex(fs.readFileSync(file), (await ops.view(fx.top)).key);
      ops.close();
    }
    reference.close();
    builder.close();
  });
});

test('an index bigger than its bound is neither written nor read', async () => {
  await withFixture(async (fx) => {
    const c = capture();
    const ops = new ProjectionOps(new Chains(fx.catalog), new MemoryCache(1 << 20), { metadataIndex: true, metadataIndexDir: fx.indexDir, metadataIndexMaxBytes: 4096, log: c.log });
    const idx = ops.indexes!;
    const want = await wire(opsOf(fx, false), fx.top, '/', 0, true);
    sameWire(await wire(ops, fx.top, '/', 0, true), want, 'walk');
    assert.equal(idx.counters.abandoned, 1);
    assert.equal(idx.counters.built, 0);
    assert.ok(!fs.existsSync(fx.indexDir) || fs.readdirSync(fx.indexDir).length === 0, 'nothing written');
    // A big file left by a replica with a larger bound is refused before it is read.
    const big = opsOf(fx, true);
    await wire(big, fx.top, '/', 0, true);
    await until(big, 'built with the default bound', () => big.indexes!.counters.built === 1);
    sameWire(await wire(ops, fx.top, '/', 0, true), want, 'walk');
    assert.equal(c.lines.filter((l) => l.action === 'ignored' && l.reason === 'too-big').length, 1);
    ops.close();
    big.close();
  });
});

test('a changed chain (new generation, new layer) is never answered from the old index; LIVE chains are never indexed', async () => {
  await withFixture(async (fx) => {
    const ops = opsOf(fx, true);
    await wire(ops, fx.top, '/', 0, true);
    await until(ops, 'built', () => ops.indexes!.counters.built === 1);
    const oldKey = (await ops.view(fx.top)).key;
    // The top layer now shows another folder: its generation moves, and so does the chain's identity.
    fs.mkdirSync(path.join(fx.store, 'layers/2/changed'), { recursive: true });
    freezeAtimes(path.join(fx.store, 'layers/2'));
    await fx.catalog.update(fx.top, { source: 'dir:layers/2' });
    const fresh = opsOf(fx, true);
    const reference = opsOf(fx, false);
    const want = await wire(reference, fx.top, '/', 0, true);
    assert.notEqual((await fresh.view(fx.top)).key, oldKey);
    sameWire(await wire(fresh, fx.top, '/', 0, true), want, 'walk');
    assert.deepEqual([fresh.indexes!.counters.loaded, fresh.indexes!.counters.served], [0, 0], 'the old index is not used');
    assert.ok(Buffer.concat(want.map((m) => Buffer.from(m, 'base64'))).includes('changed'));
    await until(fresh, 'a new index', () => fresh.indexes!.counters.built === 1);
    assert.equal(fs.readdirSync(fx.indexDir).filter((f) => f.endsWith('.idx')).length, 2);

    const live = await fx.catalog.create({ source: 'dir:layers/2', layerType: 'snapshot', base: fx.top, mountOptions: ['live'] });
    const before = fs.readdirSync(fx.indexDir).length;
    for (let i = 0; i < 3; i++) sameWire(await wire(fresh, { id: live.layerId }, '/', 0, true), await wire(reference, { id: live.layerId }, '/', 0, true), 'walk');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fs.readdirSync(fx.indexDir).length, before, 'no index for a LIVE chain');
    assert.deepEqual([fresh.indexes!.counters.built, fresh.indexes!.counters.served], [1, 0]);
    for (const o of [ops, fresh, reference]) o.close();
  });
});

/** A unary answer as the wire carries it, or the error it fails with. */
async function answer<T>(call: () => Promise<T>, encode: (m: T) => Uint8Array): Promise<string> {
  try {
    return Buffer.from(encode(await call())).toString('base64');
  } catch (err) {
    return isStrataError(err) ? `error ${err.errno} ${err.code} ${err.message}` : `thrown ${String(err)}`;
  }
}

test('Stat and ReadDir of a sealed chain are answered from its index, byte-for-byte as by traversal', async () => {
  await withFixture(async (fx) => {
    const reference = opsOf(fx, false);
    const builder = opsOf(fx, true);
    const all: string[] = [];
    for await (const batch of reference.walk(fx.top, Buffer.from('/'), 0, false)) for (const e of batch) all.push(e.path.toString('latin1'));
    await wire(builder, fx.top, '/', 0, true);
    await builder.indexes!.idle();
    const ops = opsOf(fx, true);
    const paths = [...all, '/lnk/b', '/lnk/b/c', '/missing', '/a/f1/x', '/a/abs/x', '', 'rel', '//srv/./d3/', '/a/../a'];
    const stat = (o: ProjectionOps, p: string): Promise<string> => answer(() => o.stat(fx.top, Buffer.from(p, 'latin1')), (m) => StatResponse.encode(m).finish());
    const readDir = (o: ProjectionOps, p: string, offset: number, limit: number): Promise<string> =>
      answer(() => o.readDir(fx.top, Buffer.from(p, 'latin1'), offset, limit), (m) => ReadDirResponse.encode(m).finish());
    for (const p of paths) {
      assert.equal(await stat(ops, p), await stat(reference, p), `stat ${JSON.stringify(p)}`);
      for (const [offset, limit] of [[0, 0], [0, 7], [7, 7], [50, 10], [10_000, 1]]) {
        assert.equal(await readDir(ops, p, offset, limit), await readDir(reference, p, offset, limit), `readdir ${JSON.stringify(p)} ${offset}+${limit}`);
      }
    }
    assert.ok(ops.indexes!.counters.lookups > all.length, `lookups ${ops.indexes!.counters.lookups}`);
    // Only the paths the index does not hold (through a symlink, missing, invalid) were looked up by traversal.
    assert.ok(ops.counters.misses < 40, `record misses ${ops.counters.misses}`);
    const live = await fx.catalog.create({ source: 'dir:layers/1', layerType: 'snapshot', base: fx.top, mountOptions: ['live'] });
    const before = ops.indexes!.counters.lookups;
    await ops.stat({ id: live.layerId }, Buffer.from('/a'));
    await ops.readDir({ id: live.layerId }, Buffer.from('/a'), 0, 0);
    assert.equal(ops.indexes!.counters.lookups, before, 'a LIVE chain is never answered from an index');
    for (const o of [reference, builder, ops]) o.close();
  });
});
