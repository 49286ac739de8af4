import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryCache } from '@strata/cache';
import { Errno, isStrataError } from '@strata/errors';
import { Projection, attrOf } from '@strata/traversal';
import type { ChainView } from '../chains';
import { Metadata, SIBLING_FILL_AFTER, SMALL_DIR_BYTES } from './metadata';
import { RecordCache } from './record-cache';

const roots: string[] = [];
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** Two dir: layers: /d holds 10 files of the lower layer (one replaced from above, one whited out) and 2 of the upper; /plain is a file. */
function fixture(): string[] {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-meta-'));
  roots.push(root);
  const upper = path.join(root, 'upper');
  const lower = path.join(root, 'lower');
  fs.mkdirSync(path.join(upper, 'd'), { recursive: true });
  fs.mkdirSync(path.join(lower, 'd'), { recursive: true });
  for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(lower, 'd', `f${i}`), `lower ${i}`.repeat(i + 1));
  fs.writeFileSync(path.join(upper, 'd', 'f3'), 'replaced from above');
  fs.writeFileSync(path.join(upper, 'd', 'u0'), 'upper only');
  fs.writeFileSync(path.join(upper, 'd', 'u1'), 'upper only too');
  // An OCI whiteout hides f8 of the lower layer.
  fs.writeFileSync(path.join(upper, 'd', '.wh.f8'), '');
  fs.writeFileSync(path.join(lower, 'plain'), 'a file');
  return [upper, lower];
}

/** A chain view over the layers whose projection counts its lookups; ttlMs set: a LIVE chain. */
function chain(dirs: string[], ttlMs?: number): { view: ChainView; lookups: string[] } {
  const projection = new Projection(dirs);
  const lookups: string[] = [];
  const lookup = projection.lookup.bind(projection);
  projection.lookup = (p) => {
    lookups.push(String(p));
    return lookup(p);
  };
  return { view: { key: `test:${ttlMs ?? 'sealed'}`, layers: [], ttlMs, projection }, lookups };
}

const NAMES = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7', 'f9', 'u0', 'u1'];

test('a sealed chain lists a small directory at its first miss there, and every node of it comes from the records, as lookups give them', async () => {
  const dirs = fixture();
  const { view, lookups } = chain(dirs);
  const meta = new Metadata(new RecordCache(new MemoryCache(1 << 20)));
  const truth = new Projection(dirs);
  for (const name of NAMES) {
    const p = Buffer.from(`/d/${name}`);
    const { canon, rec } = await meta.node(view, p);
    assert.equal(canon.toString(), `/d/${name}`);
    const node = await truth.lookup(p);
    assert.deepEqual(rec.attr, attrOf(node), name);
    assert.equal(rec.sourceLayer, node.kind === 'leaf' ? truth.layers.findIndex((l) => l.identity === node.obj.layer.identity) : -1, name);
    assert.equal(rec.directory, false);
  }
  assert.deepEqual(lookups.filter((l) => l.startsWith('/d/')), [], `no file looked up alone: ${lookups.join(' ')}`);
  // What the listing did not record is looked up and answered as before: a whited-out name, a missing one.
  for (const gone of ['/d/f8', '/d/nope']) {
    await assert.rejects(meta.node(view, Buffer.from(gone)), (err: unknown) => isStrataError(err) && err.errno === Errno.ENOENT);
  }
});

test('a LIVE chain looks every missed path up: a listing may be older than the file', async () => {
  const { view, lookups } = chain(fixture(), 1000);
  const meta = new Metadata(new RecordCache(new MemoryCache(1 << 20)));
  for (const name of NAMES.slice(0, 5)) await meta.node(view, Buffer.from(`/d/${name}`));
  assert.deepEqual(
    lookups.filter((l) => l.startsWith('/d/')),
    NAMES.slice(0, 5).map((n) => `/d/${n}`),
  );
});

test('misses under a path that is not a directory fail as their lookups do', async () => {
  const { view } = chain(fixture());
  const meta = new Metadata(new RecordCache(new MemoryCache(1 << 20)));
  for (const name of ['a', 'b', 'c']) {
    await assert.rejects(meta.node(view, Buffer.from(`/plain/${name}`)), (err: unknown) => isStrataError(err) && err.errno === Errno.ENOTDIR, name);
  }
  for (const name of ['a', 'b', 'c']) {
    await assert.rejects(meta.node(view, Buffer.from(`/none/${name}`)), (err: unknown) => isStrataError(err) && err.errno === Errno.ENOENT, name);
  }
});

test('concurrent misses in one directory share its listing', async () => {
  const dirs = fixture();
  const { view, lookups } = chain(dirs);
  const meta = new Metadata(new RecordCache(new MemoryCache(1 << 20)));
  const recs = await Promise.all(NAMES.map((n) => meta.node(view, Buffer.from(`/d/${n}`))));
  assert.equal(recs.length, NAMES.length);
  assert.deepEqual(lookups.filter((l) => l.startsWith('/d/')), []);
  // Each miss looks /d up (the directory cache answers all but the first) and one of them lists it.
  assert.ok(lookups.every((l) => l === '/d'), lookups.join(' '));
});

test('a large directory is listed at its second miss only: one file read from it costs one lookup', async () => {
  const dirs = fixture();
  const big = path.join(dirs[1], 'big');
  fs.mkdirSync(big);
  const name = (i: number): string => `${String(i).padStart(4, '0')}${'x'.repeat(200)}`;
  let count = 0;
  while (BigInt(fs.statSync(big).size) <= SMALL_DIR_BYTES && count < 5000) fs.writeFileSync(path.join(big, name(count++)), '');
  assert.ok(BigInt(fs.statSync(big).size) > SMALL_DIR_BYTES, 'the fixture directory grew past the bound');
  const { view, lookups } = chain(dirs);
  const meta = new Metadata(new RecordCache(new MemoryCache(8 << 20)));
  await meta.node(view, Buffer.from(`/big/${name(0)}`));
  assert.deepEqual(lookups.filter((l) => l.startsWith('/big/')), [`/big/${name(0)}`]);
  assert.equal(SIBLING_FILL_AFTER, 2);
  for (let i = 1; i < Math.min(count, 50); i++) await meta.node(view, Buffer.from(`/big/${name(i)}`));
  assert.deepEqual(lookups.filter((l) => l.startsWith('/big/')), [`/big/${name(0)}`], 'the second miss listed it');
});
