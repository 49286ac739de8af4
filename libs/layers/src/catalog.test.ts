import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { Catalog, MAX_CHAIN_DEPTH } from './index';

const run = promisify(execFile);

const stores: string[] = [];
after(async () => {
  for (const s of stores) await fs.rm(s, { recursive: true, force: true });
});

async function tempStore(): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-catalog-'));
  stores.push(root);
  for (const d of ['base', 'snap', 'other']) await fs.mkdir(path.join(root, d, 'rootfs'), { recursive: true });
  return root;
}

async function rejectsWith(p: Promise<unknown>, errno: number, code: number, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof StrataError, `expected StrataError, got ${String(err)}`);
    assert.equal(err.errno, errno, err.message);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

test('a chain of layers survives a restart and resolves by id and name', async () => {
  const store = await tempStore();
  const c = new Catalog(store);
  await c.init();
  const base = await c.create({ source: 'dir:base', layerType: 'base', name: 'debian' });
  const snap = await c.create({ source: 'dir:snap', filesystemPath: 'rootfs/', layerType: 'snapshot', base: { name: 'debian' }, mountOptions: ['no-exec'] });
  assert.equal(base.layerId, 1);
  assert.equal(snap.layerId, 2);
  assert.equal(snap.filesystemPath, '/rootfs');
  assert.deepEqual(snap.mountOptions, ['read-only', 'no-exec']);
  const again = new Catalog(store);
  const chain = await again.chain({ id: 2 });
  assert.deepEqual(chain.map((l) => l.layerId), [2, 1]);
  assert.equal((await again.get({ name: 'debian' })).layerId, 1);
  assert.equal(again.layerRoot(snap), await fs.realpath(path.join(store, 'snap', 'rootfs')));
});

test('the layer rules of docs/design.md §2 are enforced with clear errors', async () => {
  const store = await tempStore();
  const c = new Catalog(store);
  await c.init();
  await rejectsWith(c.create({ source: 'dir:base', layerType: 'snapshot' }), Errno.EINVAL, GrpcCode.INVALID_ARGUMENT, /needs a base/);
  await rejectsWith(c.create({ source: '/etc', layerType: 'base' }), Errno.EINVAL, GrpcCode.INVALID_ARGUMENT, /no scheme/);
  await rejectsWith(c.create({ source: 'dir:/etc', layerType: 'base' }), Errno.EINVAL, GrpcCode.INVALID_ARGUMENT, /absolute/);
  await rejectsWith(c.create({ source: 'dir:base/../../etc', layerType: 'base' }), Errno.EINVAL, GrpcCode.INVALID_ARGUMENT, /"\.\."/);
  await rejectsWith(c.create({ source: 'dir:base', filesystemPath: '../..', layerType: 'base' }), Errno.EINVAL, GrpcCode.INVALID_ARGUMENT, /"\.\."/);
  await rejectsWith(c.create({ source: 'oci:x', layerType: 'base' }), Errno.EOPNOTSUPP, GrpcCode.UNIMPLEMENTED, /not supported yet/);
  await rejectsWith(c.create({ source: 'dir:missing', layerType: 'base' }), Errno.ENOENT, GrpcCode.FAILED_PRECONDITION, /does not exist/);
  await fs.symlink('/etc', path.join(store, 'escape'));
  await rejectsWith(c.create({ source: 'dir:escape', layerType: 'base' }), Errno.EINVAL, GrpcCode.INVALID_ARGUMENT, /leads out of the store/);
  await rejectsWith(c.create({ source: 'dir:base', layerType: 'base', name: '123' }), Errno.EINVAL, GrpcCode.INVALID_ARGUMENT, /all digits/);
  const b = await c.create({ source: 'dir:base', layerType: 'base', name: 'b' });
  await rejectsWith(c.create({ source: 'dir:other', layerType: 'base', name: 'b' }), Errno.EEXIST, GrpcCode.ALREADY_EXISTS, /taken/);
  const s = await c.create({ source: 'dir:snap', layerType: 'snapshot', base: { id: b.layerId } });
  await rejectsWith(c.delete({ id: b.layerId }), Errno.EBUSY, GrpcCode.FAILED_PRECONDITION, /is the base of layer 2/);
  // A cycle can only be made by an update; it is refused before it is written.
  await rejectsWith(c.update({ id: b.layerId }, { layerType: 'snapshot', base: { id: s.layerId } }), Errno.EINVAL, GrpcCode.INVALID_ARGUMENT, /cycle/);
  assert.equal((await c.get({ id: b.layerId })).layerType, 'base');
});

test('ids are never reused and updates need the current generation', async () => {
  const store = await tempStore();
  const c = new Catalog(store);
  await c.init();
  const a = await c.create({ source: 'dir:base', layerType: 'base' });
  await c.delete({ id: a.layerId });
  const b = await c.create({ source: 'dir:base', layerType: 'base' });
  assert.equal(b.layerId, a.layerId + 1);
  const u = await c.update({ id: b.layerId }, { expectedGeneration: 1, name: 'renamed', mountOptions: ['live'] });
  assert.equal(u.generation, 2);
  assert.deepEqual(u.mountOptions, ['read-only', 'live']);
  await rejectsWith(c.update({ id: b.layerId }, { expectedGeneration: 1, name: 'lost' }), Errno.EBUSY, GrpcCode.FAILED_PRECONDITION, /generation 2, not 1/);
  assert.equal((await c.get({ id: b.layerId })).name, 'renamed');
  await rejectsWith(c.get({ id: 99 }), Errno.ENOENT, GrpcCode.NOT_FOUND, /layer 99 does not exist/);
});

test('an update that changes nothing keeps the generation; one that changes something bumps it', async () => {
  const store = await tempStore();
  const c = new Catalog(store, { now: () => 1000 });
  await c.init();
  const base = await c.create({ source: 'dir:base', layerType: 'base', name: 'b' });
  const l = await c.create({ source: 'dir:snap', filesystemPath: '/rootfs', layerType: 'snapshot', base: { id: base.layerId }, name: 's', mountOptions: ['no-exec'] });
  const file = path.join(store, '.strata/catalog/layers', `${l.layerId}.json`);
  const written = (await fs.stat(file)).mtimeMs;
  // No fields, and every field set to what it already is (options in another order, the path spelled differently).
  for (const same of [
    {},
    { expectedGeneration: 1 },
    { name: 's', source: 'dir:snap', filesystemPath: 'rootfs/', layerType: 'snapshot' as const, base: { name: 'b' }, mountOptions: ['no-exec' as const, 'read-only' as const] },
  ]) {
    const u = await c.update({ name: 's' }, same);
    assert.deepEqual(u, l, JSON.stringify(same));
  }
  assert.equal((await fs.stat(file)).mtimeMs, written, 'nothing rewritten');
  // A stale generation is still refused, change or not.
  await rejectsWith(c.update({ name: 's' }, { expectedGeneration: 7 }), Errno.EBUSY, GrpcCode.FAILED_PRECONDITION, /generation 1, not 7/);
  const changed = await c.update({ name: 's' }, { mountOptions: ['no-exec', 'no-dev'] });
  assert.deepEqual([changed.generation, changed.mountOptions], [2, ['read-only', 'no-exec', 'no-dev']]);
  assert.equal((await c.update({ name: 's' }, { mountOptions: ['no-dev', 'no-exec'] })).generation, 2);
  assert.equal((await c.update({ name: 's' }, { name: 's2' })).generation, 3);
});

test('chains deeper than the limit are refused', async () => {
  const store = await tempStore();
  const c = new Catalog(store);
  await c.init();
  let top = await c.create({ source: 'dir:base', layerType: 'base' });
  for (let i = 1; i < MAX_CHAIN_DEPTH; i++) {
    top = await c.create({ source: 'dir:snap', layerType: 'snapshot', base: { id: top.layerId } });
  }
  assert.equal((await c.chain({ id: top.layerId })).length, MAX_CHAIN_DEPTH);
  await rejectsWith(c.create({ source: 'dir:snap', layerType: 'snapshot', base: { id: top.layerId } }), Errno.EINVAL, GrpcCode.INVALID_ARGUMENT, /deeper than 128/);
});

test('a malformed catalog file is reported with its file and field, not thrown at everyone', async () => {
  const store = await tempStore();
  const c = new Catalog(store, { refreshMs: 0 });
  await c.init();
  await c.create({ source: 'dir:base', layerType: 'base' });
  const bad = path.join(store, '.strata', 'catalog', 'layers', '7.json');
  await fs.writeFile(bad, JSON.stringify({ layerId: 7, baseLayerId: 0, name: '', source: 'dir:base', filesystemPath: '/', layerType: 'weird', mountOptions: [], generation: 1, createTimeMs: 0, updateTimeMs: 0 }));
  await fs.writeFile(path.join(store, '.strata', 'catalog', 'layers', '8.json'), '{ not json');
  const listing = await c.list();
  assert.deepEqual(listing.layers.map((l) => l.layerId), [1]);
  assert.equal(listing.problems.length, 2);
  await rejectsWith(c.get({ id: 7 }), Errno.EIO, GrpcCode.DATA_LOSS, /7\.json: field "layerType" has unknown value "weird"/);
  await rejectsWith(c.get({ id: 8 }), Errno.EIO, GrpcCode.DATA_LOSS, /8\.json: not valid JSON/);
});

test('two processes creating layers at once get distinct ids and lose nothing', async () => {
  const store = await tempStore();
  await new Catalog(store).init();
  const script = `
    const { Catalog } = require(${JSON.stringify(path.join(__dirname, 'index.js'))});
    (async () => {
      const c = new Catalog(process.argv[1]);
      const ids = [];
      for (let i = 0; i < 15; i++) ids.push((await c.create({ source: 'dir:base', layerType: 'base', name: process.argv[2] + i })).layerId);
      console.log(JSON.stringify(ids));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const outs = await Promise.all(['a', 'b'].map((tag) => run(process.execPath, ['-e', script, store, tag])));
  const ids = outs.flatMap((o) => JSON.parse(o.stdout) as number[]);
  assert.equal(new Set(ids).size, 30);
  const listing = await new Catalog(store).list();
  assert.equal(listing.layers.length, 30);
  assert.equal(listing.problems.length, 0);
});

test('a name or id another writer just created or renamed is found at once, not after the next refresh (read-your-writes)', async () => {
  const store = await tempStore();
  let t = 0;
  // A reader that would not look at the folder again for an hour on its own.
  const reader = new Catalog(store, { now: () => t, refreshMs: 3_600_000 });
  const writer = new Catalog(store);
  await reader.init();
  const base = await writer.create({ source: 'dir:base', layerType: 'base', name: 'one' });
  assert.equal((await reader.get({ name: 'one' })).layerId, base.layerId);
  for (let i = 0; i < 10; i++) {
    t += 1;
    const name = `renamed-${i}`;
    await writer.update({ id: base.layerId }, { name });
    assert.equal((await reader.get({ name })).layerId, base.layerId, `rename ${i}`);
    assert.deepEqual((await reader.chain({ name })).map((l) => l.name), [name]);
  }
  const made = await writer.create({ source: 'dir:other', layerType: 'base' });
  assert.equal((await reader.get({ id: made.layerId })).layerId, made.layerId);
  // A real miss is still a miss, after that one read.
  await rejectsWith(reader.get({ name: 'never' }), Errno.ENOENT, GrpcCode.NOT_FOUND, /does not exist/);
});

test('a write guard, called under the writer lock, refuses every change while it throws', async () => {
  const store = await tempStore();
  let refuse = false;
  const c = new Catalog(store, {
    writeGuard: async () => {
      if (refuse) throw new StrataError(Errno.EACCES, 'refused by the guard', { code: GrpcCode.PERMISSION_DENIED });
    },
  });
  await c.init();
  const base = await c.create({ source: 'dir:base', layerType: 'base', name: 'kept' });
  refuse = true;
  await rejectsWith(c.create({ source: 'dir:other', layerType: 'base' }), Errno.EACCES, GrpcCode.PERMISSION_DENIED, /guard/);
  await rejectsWith(c.update({ id: base.layerId }, { name: 'x' }), Errno.EACCES, GrpcCode.PERMISSION_DENIED, /guard/);
  await rejectsWith(c.delete({ id: base.layerId }), Errno.EACCES, GrpcCode.PERMISSION_DENIED, /guard/);
  const after = await new Catalog(store).list();
  assert.deepEqual(after.layers.map((l) => l.name), ['kept']);
});
