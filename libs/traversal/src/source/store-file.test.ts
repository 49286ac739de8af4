import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DirSource } from './dir-source';
import { FdCache } from './fd-cache';

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
