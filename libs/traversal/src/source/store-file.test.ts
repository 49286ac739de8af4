import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DirSource } from './dir-source';
import { FdCache } from './fd-cache';
import { Errno, isStrataError } from '@strata/errors';

test('storeFile: a sealed folder names its regular files store-relative, with the lstat that found them; nothing else', async () => {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-store-file-')));
  try {
    fs.mkdirSync(path.join(store, 'layer/d'), { recursive: true });
    fs.writeFileSync(path.join(store, 'layer/d/f'), 'data');
    fs.symlinkSync('f', path.join(store, 'layer/d/l'));
    const sealed = new DirSource(path.join(store, 'layer'), { storeRoot: store, fdCache: new FdCache() });
    const root = await sealed.root();
    const d = await sealed.lookup(root, Buffer.from('d'));
    assert.ok(d);
    const [f, l] = await sealed.lookupMany(d, [Buffer.from('f'), Buffer.from('l')]);
    assert.ok(f && l);
    const named = sealed.storeFile(f);
    assert.equal(named?.path.toString(), 'layer/d/f');
    assert.equal(named?.st.ino, fs.lstatSync(path.join(store, 'layer/d/f'), { bigint: true }).ino);
    assert.equal(sealed.storeFile(l), undefined, 'a symlink');
    assert.equal(sealed.storeFile(d), undefined, 'a directory');
    // A LIVE folder's objects may have changed since they were found.
    const live = new DirSource(path.join(store, 'layer'), { storeRoot: store, live: true });
    const lf = await live.lookup(await live.lookup(await live.root(), Buffer.from('d')).then((x) => x!), Buffer.from('f'));
    assert.ok(lf);
    assert.equal(live.storeFile(lf), undefined);
    // A folder outside the store root names nothing.
    const other = new DirSource(path.join(store, 'layer'), { storeRoot: path.join(store, 'elsewhere'), fdCache: new FdCache() });
    const of = await other.lookupMany((await other.lookup(await other.root(), Buffer.from('d')))!, [Buffer.from('f')]);
    assert.equal(other.storeFile(of[0]!), undefined);
    await sealed.close();
    await other.close();
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
});

test('readLocatedInto: the bytes readLocated gives, into the caller buffer, short only at the end of the file; sealed and LIVE; bad requests and locations refused', async () => {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-located-into-')));
  try {
    fs.mkdirSync(path.join(store, 'layer/d'), { recursive: true });
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131 + (i >> 8)) & 0xff;
    fs.writeFileSync(path.join(store, 'layer/d/f'), data);
    for (const source of [new DirSource(path.join(store, 'layer'), { storeRoot: store, fdCache: new FdCache() }), new DirSource(path.join(store, 'layer'), { storeRoot: store, live: true })]) {
      const d = await source.lookup(await source.root(), Buffer.from('d'));
      assert.ok(d);
      const f = await source.lookup(d, Buffer.from('f'));
      assert.ok(f);
      const loc = source.locate(f);
      const into = Buffer.alloc(200_000, 0xee);
      for (const [offset, length] of [[0, 4096], [12_345, 200_000], [250_000, 100_000], [300_000, 10], [299_999, 1], [5, 0]]) {
        into.fill(0xee);
        const n = await source.readLocatedInto(loc, into, offset, Math.min(length, into.length));
        const want = await source.readLocated(loc, offset, Math.min(length, into.length));
        assert.equal(n, want.length, `${offset}+${length}`);
        assert.ok(into.subarray(0, n).equals(data.subarray(offset, offset + n)), `${offset}+${length}: bytes`);
        assert.ok(into.subarray(n).every((b) => b === 0xee), `${offset}+${length}: nothing past the count`);
      }
      for (const bad of [[-1, 10], [0, 200_001], [0.5, 10], [0, -1]]) {
        await assert.rejects(source.readLocatedInto(loc, into, bad[0], bad[1]), (e: unknown) => isStrataError(e) && e.errno === Errno.EINVAL);
      }
      for (const where of ['../outside', '/etc/passwd', 'layer/../../x']) {
        await assert.rejects(source.readLocatedInto(Buffer.from(where), into, 0, 10), (e: unknown) => isStrataError(e) && e.errno === Errno.EIO);
      }
      await assert.rejects(source.readLocatedInto(Buffer.from('layer/d/missing'), into, 0, 10), (e: unknown) => isStrataError(e) && e.errno === Errno.ENOENT);
      await source.close();
    }
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
});
