import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import { Catalog } from '@strata/layers';
import { Chains } from '../chains';
import { ExtentMaps, MAX_MAP_WINDOW, MAX_SIBLINGS, MAX_SIBLING_SIZE } from './extent-maps';
import { STORE_ID_FILE, StoreIdentityFile } from './store-identity';

async function withStore(fn: (store: string, maps: ExtentMaps, chains: Chains) => Promise<void>): Promise<void> {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-extent-unit-')));
  try {
    fs.mkdirSync(path.join(store, 'a/sub'), { recursive: true });
    fs.writeFileSync(path.join(store, 'a/sub/small'), 'hello');
    // A sparse file larger than one answer's window.
    const fd = fs.openSync(path.join(store, 'a/big'), 'w');
    fs.ftruncateSync(fd, MAX_MAP_WINDOW + 12345);
    fs.closeSync(fd);
    fs.symlinkSync('/etc/passwd', path.join(store, 'a/out'));
    const catalog = new Catalog(store);
    await catalog.init();
    await catalog.create({ source: 'dir:a', layerType: 'base', name: 'a' });
    const chains = new Chains(catalog);
    try {
      await fn(store, new ExtentMaps((ref) => chains.view(ref), store), chains);
    } finally {
      chains.close();
    }
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
}

test('a dir: file maps to itself, store-relative, with the identity lstat gives', async () => {
  await withStore(async (store, maps) => {
    const m = await maps.map({ name: 'a' }, Buffer.from('/sub/small'), 1, 0);
    assert.deepEqual(m.runs, [{ kind: 'data', offset: 1, length: 4, file: 0, fileOffset: 1 }]);
    const st = fs.lstatSync(path.join(store, 'a/sub/small'), { bigint: true });
    assert.deepEqual(m.files, [{ path: 'a/sub/small', dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs }]);
    assert.equal(m.eof, true);
    // Past the end: an empty, final answer.
    const past = await maps.map({ name: 'a' }, Buffer.from('/sub/small'), 99, 10);
    assert.deepEqual([past.runs, past.length, past.eof], [[], 0, true]);
  });
});

test('a dir: file is one store file whole: one answer maps it to its end (no window), a range asked for is kept', async () => {
  await withStore(async (_store, maps) => {
    const size = MAX_MAP_WINDOW + 12345;
    const all = await maps.map({ name: 'a' }, Buffer.from('/big'), 0, 0);
    assert.deepEqual([all.offset, all.length, all.eof, all.runs.length], [0, size, true, 1]);
    const rest = await maps.map({ name: 'a' }, Buffer.from('/big'), MAX_MAP_WINDOW, 0);
    assert.deepEqual([rest.offset, rest.length, rest.eof], [MAX_MAP_WINDOW, 12345, true]);
    assert.deepEqual(rest.runs, [{ kind: 'data', offset: MAX_MAP_WINDOW, length: 12345, file: 0, fileOffset: MAX_MAP_WINDOW }]);
    const part = await maps.map({ name: 'a' }, Buffer.from('/big'), 10, 100);
    assert.deepEqual([part.offset, part.length, part.eof], [10, 100, false]);
  });
});

test('a file mapped through its layer (not as one store file): asked to its end, window after window in one answer while its runs are few, their cuts merged', async () => {
  await withStore(async (store, _fast, chains) => {
    const maps = new ExtentMaps((ref) => chains.view(ref), store, false);
    const size = MAX_MAP_WINDOW + 12345;
    const all = await maps.map({ name: 'a' }, Buffer.from('/big'), 0, 0);
    assert.deepEqual([all.offset, all.length, all.eof], [0, size, true]);
    assert.deepEqual(all.runs, [{ kind: 'data', offset: 0, length: size, file: 0, fileOffset: 0 }]);
    // A range asked for: one window at most, as before.
    const part = await maps.map({ name: 'a' }, Buffer.from('/big'), 5, MAX_MAP_WINDOW + 10);
    assert.deepEqual([part.offset, part.length, part.eof], [5, MAX_MAP_WINDOW, false]);
  });
});

test('siblings: the small regular files after the one asked for, wrapping around, at most as many as asked and MAX_SIBLINGS', async () => {
  await withStore(async (store, maps) => {
    for (const n of ['b', 'c', 'd']) fs.writeFileSync(path.join(store, 'a/sub', n), n.repeat(3));
    // Sparse: only its size matters. A file of a few MiB is a sibling still (mapped whole, one run).
    fs.writeFileSync(path.join(store, 'a/sub/large'), '');
    fs.truncateSync(path.join(store, 'a/sub/large'), MAX_SIBLING_SIZE + 1);
    fs.writeFileSync(path.join(store, 'a/sub/mid'), '');
    fs.truncateSync(path.join(store, 'a/sub/mid'), 3 << 20);
    fs.mkdirSync(path.join(store, 'a/sub/dir'));
    fs.symlinkSync('b', path.join(store, 'a/sub/link'));
    const all = await maps.mapWithSiblings({ name: 'a' }, Buffer.from('/sub/c'), 0, 0, 100);
    assert.deepEqual(all.map.files.map((f) => f.path), ['a/sub/c']);
    // After "c" in bytewise order: d, (dir, large, link left out), mid, small, then b; never c itself.
    assert.deepEqual(all.siblings.map((s) => s.path.toString()), ['/sub/d', '/sub/mid', '/sub/small', '/sub/b']);
    for (const s of all.siblings) {
      assert.deepEqual(s.map.files.map((f) => f.path), [`a${s.path.toString()}`]);
      assert.equal(s.map.eof, true);
      assert.equal(s.map.offset, 0);
    }
    const two = await maps.mapWithSiblings({ name: 'a' }, Buffer.from('/sub/c'), 0, 0, 2);
    assert.deepEqual(two.siblings.map((s) => s.path.toString()), ['/sub/d', '/sub/mid']);
    const none = await maps.mapWithSiblings({ name: 'a' }, Buffer.from('/sub/c'), 0, 0, 0);
    assert.deepEqual(none.siblings, []);
    assert.ok(MAX_SIBLINGS >= 2);
  });
});

test('siblings are capped at MAX_SIBLINGS however many are asked', async () => {
  await withStore(async (store, maps) => {
    fs.mkdirSync(path.join(store, 'a/many'));
    for (let i = 0; i < MAX_SIBLINGS + 10; i++) fs.writeFileSync(path.join(store, 'a/many', `f${String(i).padStart(4, '0')}`), 'x');
    const m = await maps.mapWithSiblings({ name: 'a' }, Buffer.from('/many/f0000'), 0, 0, 100_000);
    assert.equal(m.siblings.length, MAX_SIBLINGS);
    assert.equal(m.siblings[0].path.toString(), '/many/f0001');
  });
});

test('a symlink, a directory, a missing path and a bad range are refused', async () => {
  await withStore(async (_store, maps) => {
    const errno = (p: Promise<unknown>): Promise<number | undefined> =>
      p.then(
        () => undefined,
        (e: unknown) => (e instanceof StrataError ? e.errno : -1),
      );
    assert.equal(await errno(maps.map({ name: 'a' }, Buffer.from('/out'), 0, 0)), Errno.EINVAL);
    assert.equal(await errno(maps.map({ name: 'a' }, Buffer.from('/sub'), 0, 0)), Errno.EISDIR);
    assert.equal(await errno(maps.map({ name: 'a' }, Buffer.from('/nope'), 0, 0)), Errno.ENOENT);
    assert.equal(await errno(maps.map({ name: 'a' }, Buffer.from('/sub/small'), -1, 0)), Errno.EINVAL);
  });
});

test('replicas racing to name a store agree on one id; a damaged id file is refused', async () => {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-store-id-'));
  try {
    const ids = await Promise.all(Array.from({ length: 8 }, () => new StoreIdentityFile(store).storeId()));
    assert.equal(new Set(ids).size, 1);
    const again = await new StoreIdentityFile(store).identity();
    assert.equal(again.storeId, ids[0]);
    assert.equal(again.marker.ino, fs.statSync(path.join(store, STORE_ID_FILE), { bigint: true }).ino);
    assert.deepEqual(fs.readdirSync(path.join(store, '.strata')), ['store-id']);
    fs.writeFileSync(path.join(store, STORE_ID_FILE), 'not an id\n');
    await assert.rejects(new StoreIdentityFile(store).storeId(), (e: unknown) => e instanceof StrataError && e.errno === Errno.EIO && /not an id/.test(e.message));
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
});
