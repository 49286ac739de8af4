import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, GrpcCode, isStrataError } from '@strata/errors';
import { Projection } from './index';

const roots: string[] = [];
after(async () => {
  for (const r of roots) await fs.rm(r, { recursive: true, force: true });
});

async function layers(spec: Record<string, Record<string, string | { link: string }>>): Promise<string[]> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-proj-'));
  roots.push(root);
  const dirs: string[] = [];
  for (const [layer, files] of Object.entries(spec)) {
    const d = path.join(root, layer);
    await fs.mkdir(d, { recursive: true });
    for (const [rel, v] of Object.entries(files)) {
      const p = path.join(d, rel);
      await fs.mkdir(rel.endsWith('/') ? p : path.dirname(p), { recursive: true });
      if (rel.endsWith('/')) continue;
      if (typeof v === 'string') await fs.writeFile(p, v);
      else await fs.symlink(v.link, p);
    }
    dirs.push(d);
  }
  return dirs;
}

async function errnoOf(p: Promise<unknown>): Promise<{ errno: number; code: number }> {
  try {
    await p;
  } catch (err) {
    assert.ok(isStrataError(err), String(err));
    return { errno: err.errno, code: err.code };
  }
  return { errno: 0, code: 0 };
}

test('bad paths are refused with EINVAL/ENAMETOOLONG and INVALID_ARGUMENT', async () => {
  const p = new Projection(await layers({ top: { 'a/b': 'x' } }));
  for (const bad of ['relative', '/a/../etc', '/a\0b', '']) {
    assert.deepEqual(await errnoOf(p.stat(bad)), { errno: Errno.EINVAL, code: GrpcCode.INVALID_ARGUMENT }, JSON.stringify(bad));
  }
  assert.equal((await errnoOf(p.stat(`/${'n'.repeat(256)}`))).errno, Errno.ENAMETOOLONG);
  assert.equal((await errnoOf(p.stat(`/${'a/'.repeat(2100)}`))).errno, Errno.ENAMETOOLONG);
  assert.equal((await p.stat('//a/./b')).size, 1);
});

test('OCI whiteouts hide lower entries but not an entry of their own layer', async () => {
  const p = new Projection(
    await layers({
      top: { 'd/.wh.gone': '', 'd/.wh.kept': '', 'd/kept': 'top', 'd/.wh..wh..opq': '' },
      mid: { 'd/gone': 'mid', 'e/.wh.x': '', 'e/y': 'y' },
      low: { 'd/hidden': 'low', 'e/x': 'x' },
    }),
  );
  assert.deepEqual((await p.readdir('/d')).map((e) => e.name.toString()), ['kept']);
  assert.equal((await p.read('/d/kept', 0, 10)).data.toString(), 'top');
  assert.deepEqual((await p.readdir('/e')).map((e) => e.name.toString()), ['y']);
  assert.equal((await errnoOf(p.stat('/e/x'))).errno, Errno.ENOENT);
  assert.equal((await errnoOf(p.stat('/e/.wh.x'))).errno, Errno.ENOENT);
  assert.equal((await errnoOf(p.stat('/d/hidden'))).errno, Errno.ENOENT);
});

test('symlinks in the middle of a path resolve inside the layer, never on the host', async () => {
  const p = new Projection(
    await layers({
      top: { 'etc/': '', 'abs': { link: '/etc' }, 'up': { link: '../../../etc' }, 'loop': { link: 'loop' }, 'file': 'f', 'tofile': { link: 'file' } },
      base: { 'etc/hostname': 'layer-host' },
    }),
  );
  assert.equal((await p.read('/abs/hostname', 0, 100)).data.toString(), 'layer-host');
  assert.equal((await p.read('/up/hostname', 0, 100)).data.toString(), 'layer-host');
  assert.equal((await errnoOf(p.stat('/abs/passwd'))).errno, Errno.ENOENT);
  assert.equal((await errnoOf(p.stat('/loop/x'))).errno, Errno.ELOOP);
  assert.equal((await errnoOf(p.stat('/tofile/x'))).errno, Errno.ENOTDIR);
  assert.equal((await p.readlink('/abs')).toString(), '/etc');
  assert.equal((await errnoOf(p.readlink('/file'))).errno, Errno.EINVAL);
});

test('reads validate offsets and lengths and refuse directories', async () => {
  const p = new Projection(await layers({ top: { 'f': '0123456789', 'd/': '' } }));
  assert.deepEqual(await p.read('/f', 8, 100), { data: Buffer.from('89'), eof: true });
  assert.deepEqual(await p.read('/f', 2, 3), { data: Buffer.from('234'), eof: false });
  assert.deepEqual(await p.read('/f', 50, 3), { data: Buffer.alloc(0), eof: true });
  assert.equal((await errnoOf(p.read('/f', -1, 3))).errno, Errno.EINVAL);
  assert.equal((await errnoOf(p.read('/f', 0, 2 ** 40))).errno, Errno.EINVAL);
  assert.equal((await errnoOf(p.read('/d', 0, 3))).errno, Errno.EISDIR);
  assert.equal((await errnoOf(p.getXattr('/f', 'user.none'))).errno, Errno.ENODATA);
});

test('a directory looked up again comes from the directory cache, a symlink to it stays a symlink', async () => {
  const dirs = await layers({ top: { 'a/b/c': 'top c', 'link': { link: 'a/b' } }, low: { 'a/b/d': 'low d' } });
  const p = new Projection(dirs);
  const first = await p.lookup('/a/b');
  assert.equal(first.kind, 'dir');
  assert.equal(first.kind === 'dir' ? first.dirs.length : 0, 2, 'merged with the lower layer');
  const lstats: string[] = [];
  for (const layer of p.layers) {
    const lookup = layer.lookup.bind(layer);
    layer.lookup = (dir, name) => {
      lstats.push(name.toString());
      return lookup(dir, name);
    };
  }
  assert.equal(await p.lookup('//a/./b/'), first, 'the cached node, by its canonical path');
  assert.deepEqual(lstats, [], 'no layer asked again');
  assert.deepEqual((await p.readdir('/a/b')).map((e) => e.name.toString()), ['c', 'd']);
  // Followed in the middle of a path, the link reaches the cached directory; as the last name it is not followed.
  assert.equal((await p.read('/link/d', 0, 10)).data.toString(), 'low d');
  assert.equal((await p.lookup('/link')).kind, 'leaf');
  assert.equal((await errnoOf(p.readdir('/link'))).errno, Errno.ENOTDIR);
});

test('a listing keeps its merged subdirectories: going on into them looks nothing up again, and finds what a lookup finds', async () => {
  const dirs = await layers({
    upper: { 'p/a/x': 'ua', 'p/b/.wh..wh..opq': '', 'p/b/y': 'ub', 'p/c/': '', l: { link: 'p' } },
    lower: { 'p/a/z': 'la', 'p/b/old': 'lb', 'p/d/w': 'ld', 'p/c/q': 'lc' },
  });
  const cached = new Projection(dirs);
  const fresh = new Projection(dirs, { dirCacheEntries: 0 });
  // Through a symlinked name the listing is of the real directory, kept under the real path only.
  assert.deepEqual((await cached.readdirNodes('/l/a')).map((e) => e.name.toString()), ['x', 'z']);
  await assert.rejects(cached.readdirNodes('/l'), (e: unknown) => isStrataError(e) && e.errno === Errno.ENOTDIR);
  await cached.readdirNodes('/p');
  let lookups = 0;
  for (const layer of cached.layers) {
    const lookup = layer.lookup.bind(layer);
    layer.lookup = (dir, name) => {
      lookups++;
      return lookup(dir, name);
    };
  }
  for (const d of ['a', 'b', 'c', 'd']) {
    const got = await cached.readdirNodes(`/p/${d}`);
    const want = await fresh.readdirNodes(`/p/${d}`);
    assert.deepEqual(got.map((e) => e.name.toString()), want.map((e) => e.name.toString()), d);
    // (Reading a directory moves its atime: a kept node has the one it was found with, as every kept directory does.)
    const noAtime = (a: Awaited<ReturnType<Projection['stat']>>): object => ({ ...a, atimeSec: 0, atimeNsec: 0 });
    assert.deepEqual(noAtime(await cached.stat(`/p/${d}`)), noAtime(await fresh.stat(`/p/${d}`)), d);
  }
  // b is opaque: its lower entries stay hidden; c merges both layers.
  assert.deepEqual((await cached.readdirNodes('/p/b')).map((e) => e.name.toString()), ['y']);
  assert.deepEqual((await cached.readdirNodes('/p/c')).map((e) => e.name.toString()), ['q']);
  // Only the opaque checks of the listings' own children (none are directories) were made; no name was looked up to reach a directory.
  assert.equal(lookups, 0, `${lookups} lookups to reach directories a listing had found`);
});
