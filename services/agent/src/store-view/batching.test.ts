import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExtentMap, StoreFileIdentity, StoreIdentity } from '@strata/client';
import { Errno, StrataError } from '@strata/errors';
import type { LayerRef } from '@strata/layers';
import { BeneathRoot } from './beneath';
import { SIBLINGS, type LayerReader } from './layer-reader';
import { StoreView, type StoreViewClient } from './store-view';

/**
 * What a walk of a directory of small files costs through the store view:
 * ExtentMap calls (one asks for its siblings' maps too), and opens beneath
 * the store root (a file's parent directory is held open).
 */

let store: string;
let storeId: string;
const FILES = 300;
const name = (i: number): string => `f${String(i).padStart(4, '0')}`;
const bodyOf = (i: number): string => `file ${i} `.repeat(1 + (i % 7));

function identityOf(rel: string): StoreFileIdentity {
  const st = fs.lstatSync(path.join(store, rel), { bigint: true });
  return { path: rel, dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeSec: Number(st.mtimeNs / 1_000_000_000n), mtimeNsec: Number(st.mtimeNs % 1_000_000_000n) };
}

function mapOf(p: string): ExtentMap {
  const id = identityOf(`layer${p}`);
  return {
    storeId,
    attr: { ino: id.ino, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: id.size, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 },
    files: [id],
    extents: id.size > 0 ? [{ kind: 'data', offset: 0, length: id.size, file: 0, fileOffset: 0 }] : [],
    offset: 0,
    length: id.size,
    eof: true,
  };
}

/** Maps as the resolver does, siblings those after the file in bytewise order, wrapping, at most as many as asked. */
class SiblingResolver implements StoreViewClient {
  calls = 0;
  askedSiblings: number[] = [];
  constructor(private readonly withSiblings: boolean) {}

  async storeIdentity(): Promise<StoreIdentity> {
    return { storeId, marker: identityOf('.strata/store-id') };
  }

  async extentMap(_ref: LayerRef, p: Buffer, offset: number, _length: number, siblings = 0): Promise<ExtentMap> {
    this.calls++;
    this.askedSiblings.push(siblings);
    // An answer takes a moment, as a unary call does: concurrent askers overlap.
    await new Promise((r) => setTimeout(r, 2));
    if (offset !== 0) throw new StrataError(Errno.EINVAL, 'small files only here');
    const m = mapOf(p.toString());
    if (!this.withSiblings || siblings === 0) return m;
    const dir = path.posix.dirname(p.toString());
    const names = fs.readdirSync(path.join(store, 'layer', dir)).sort();
    const at = names.findIndex((n) => n > path.posix.basename(p.toString()));
    const out = [];
    for (let i = 0; i < names.length && out.length < siblings; i++) {
      const n = names[(Math.max(0, at) + i) % names.length];
      if (n === path.posix.basename(p.toString())) continue;
      out.push({ path: Buffer.from(path.posix.join(dir, n)), map: mapOf(path.posix.join(dir, n)) });
    }
    return { ...m, siblings: out };
  }
}

before(() => {
  store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-store-batch-'));
  storeId = randomUUID();
  fs.mkdirSync(path.join(store, '.strata'));
  fs.writeFileSync(path.join(store, '.strata/store-id'), storeId);
  fs.mkdirSync(path.join(store, 'layer/a/b'), { recursive: true });
  for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(store, 'layer/a/b', name(i)), bodyOf(i));
});

after(() => fs.rmSync(store, { recursive: true, force: true }));

const noFallback = (): Promise<Buffer> => Promise.reject(new Error('read through the resolver where the store should have served'));
const LAYER: LayerRef = { id: 3 };

async function readAll(view: StoreView, order: number[], concurrency: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < order.length) {
      const i = order[next++];
      const r = view.reader(LAYER);
      const got = await r.read(Buffer.from(`/a/b/${name(i)}`), 0, 4096, noFallback);
      assert.equal(got.toString(), bodyOf(i), name(i));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

test('a directory read file by file asks ExtentMap once per SIBLINGS+1 files, and opens each file from its held parent', async () => {
  const fake = new SiblingResolver(true);
  const view = await StoreView.open(store, fake);
  try {
    const opensBefore = view.opens;
    await readAll(view, [...Array(FILES).keys()], 1);
    assert.equal(fake.calls, Math.ceil(FILES / (SIBLINGS + 1)));
    assert.equal(view.counters.maps, fake.calls);
    assert.ok(fake.askedSiblings.every((n) => n === SIBLINGS));
    // The parent (layer/a/b) walked once: three directory opens, then one open per file.
    assert.equal(view.opens - opensBefore, 3 + FILES);
    assert.equal(view.counters.directBytes, [...Array(FILES).keys()].reduce((n, i) => n + bodyOf(i).length, 0));
  } finally {
    await view.close();
  }
});

test('concurrent readers of one directory share the call that brings their maps', async (t) => {
  const fake = new SiblingResolver(true);
  const view = await StoreView.open(store, fake);
  try {
    // 64 readers at once, in random order: each waits for a call of the directory in flight before asking itself.
    const order = [...Array(FILES).keys()].sort(() => Math.random() - 0.5);
    await readAll(view, order, 64);
    t.diagnostic(`${fake.calls} ExtentMap calls for ${FILES} files read 64 at a time in random order`);
    assert.ok(fake.calls <= FILES / 10, `${fake.calls} ExtentMap calls for ${FILES} files`);
  } finally {
    await view.close();
  }
});

test('every reader of a layer shares its maps; a resolver that sends no siblings costs one call per file, as before', async () => {
  const old = new SiblingResolver(false);
  const view = await StoreView.open(store, old);
  try {
    await readAll(view, [...Array(20).keys()], 1);
    assert.equal(old.calls, 20);
    // Another reader of the same layer (the handover's, a second mount's): no call for a file already mapped.
    assert.equal(view.reader({ id: 3 }), view.reader(LAYER));
    const fh = await view.reader({ id: 3 }).wholeFd(Buffer.from(`/a/b/${name(4)}`));
    assert.ok(fh);
    await fh.close();
    assert.equal(old.calls, 20);
    // Another layer has maps of its own.
    await view.reader({ id: 4 }).read(Buffer.from(`/a/b/${name(4)}`), 0, 10, noFallback);
    assert.equal(old.calls, 21);
  } finally {
    await view.close();
  }
});

/**
 * SiblingResolver's answer, then (asked beyondDirectory, unless it is a
 * resolver that predates it) the directory's files after the one asked
 * only, and whole next directories of the parent while they fit.
 */
class TreeResolver extends SiblingResolver {
  askedBeyond: boolean[] = [];
  asked: string[] = [];
  constructor(private readonly knowsBeyond: boolean) {
    super(true);
  }

  override async extentMap(ref: LayerRef, p: Buffer, offset: number, length: number, siblings = 0, beyondDirectory = false): Promise<ExtentMap> {
    this.askedBeyond.push(beyondDirectory);
    this.asked.push(p.toString());
    const m = await super.extentMap(ref, p, offset, length, siblings);
    if (!this.knowsBeyond || !beyondDirectory) return m;
    const out = (m.siblings ?? []).filter((s) => s.path.toString() > p.toString());
    const dir = path.posix.dirname(p.toString());
    const parent = path.posix.dirname(dir);
    const dirs = fs.readdirSync(path.join(store, 'layer', parent)).sort();
    for (const d of dirs.filter((d) => d > path.posix.basename(dir))) {
      const files = fs.readdirSync(path.join(store, 'layer', parent, d)).sort();
      if (files.length > siblings - out.length) break;
      for (const f of files) out.push({ path: Buffer.from(path.posix.join(parent, d, f)), map: mapOf(path.posix.join(parent, d, f)) });
    }
    return { ...m, siblings: out };
  }
}

test('a tree of small directories read file by file asks once per SIBLINGS+1 files (beyondDirectory), not once per directory', async () => {
  const DIRS = 30;
  const PER_DIR = 20;
  const files: string[] = [];
  for (let d = 0; d < DIRS; d++) {
    const dir = `w/d${String(d).padStart(3, '0')}`;
    fs.mkdirSync(path.join(store, 'layer', dir), { recursive: true });
    for (let f = 0; f < PER_DIR; f++) {
      files.push(`/${dir}/${name(f)}`);
      fs.writeFileSync(path.join(store, 'layer', dir, name(f)), `${dir} ${bodyOf(f)}`);
    }
  }
  const walk = async (fake: TreeResolver, readerAsks: number, after?: (r: LayerReader) => void): Promise<void> => {
    const view = await StoreView.open(store, fake);
    try {
      const r = view.reader(LAYER);
      for (const f of files) assert.equal((await r.read(Buffer.from(f), 0, 4096, noFallback)).toString(), fs.readFileSync(path.join(store, 'layer', f), 'utf8'), f);
      after?.(r);
      assert.equal(view.counters.maps, fake.calls);
      // Every file but those the reader asked for came as another's sibling, once.
      assert.equal(view.counters.siblingMaps, files.length - readerAsks);
    } finally {
      await view.close();
    }
  };
  try {
    const tree = new TreeResolver(true);
    const ahead = (r: LayerReader, from: string, n: number): string[] => r.mappedAfter(Buffer.from(from), n).map(String);
    await walk(tree, 1, (r) => {
      // The files after one in the order the answers brought them: the walk's next, across directories and answers.
      assert.deepEqual(ahead(r, files[0], 3), files.slice(1, 4));
      // From the end of the first answer (d011) into the one asked behind the reader.
      const at = files.indexOf(`/w/d011/${name(PER_DIR - 3)}`);
      assert.deepEqual(ahead(r, files[at], 5), files.slice(at + 1, at + 6));
      assert.deepEqual(ahead(r, files[files.length - 1], 5), []);
    });
    // The reader asks once; each answer after is asked for behind it, half-way through the one before, by its last file:
    // the first answer carries its directory and the whole ones after it that fit in SIBLINGS, each next one as many
    // whole directories, and the one asked at the end of the tree brings nothing.
    const first = 1 + Math.floor((SIBLINGS - (PER_DIR - 1)) / PER_DIR);
    const next = Math.floor(SIBLINGS / PER_DIR);
    const lastOf = (d: number): string => `/w/d${String(d).padStart(3, '0')}/${name(PER_DIR - 1)}`;
    const ends = [first - 1];
    while (ends[ends.length - 1] < DIRS - 1) ends.push(Math.min(DIRS - 1, ends[ends.length - 1] + next));
    assert.deepEqual(tree.asked, [files[0], ...ends.map(lastOf)]);
    assert.ok(tree.askedBeyond.every((b) => b));
    // A resolver that predates the field: one call per directory, as before (and none asked behind the reader).
    const old = new TreeResolver(false);
    await walk(old, DIRS, (r) => assert.deepEqual(ahead(r, files[0], 25), files.slice(1, PER_DIR)));
    assert.equal(old.calls, DIRS);
  } finally {
    fs.rmSync(path.join(store, 'layer/w'), { recursive: true, force: true });
  }
});

test('beneath: held directories are bounded, a symlinked one is refused, a forgotten one walked again', async () => {
  const root = await BeneathRoot.open(store, 2);
  fs.mkdirSync(path.join(store, 'beneath'));
  try {
    for (const d of ['d1', 'd2', 'd3', 'd4']) {
      fs.mkdirSync(path.join(store, 'beneath', d));
      fs.writeFileSync(path.join(store, 'beneath', d, 'x'), d);
    }
    for (const d of ['d1', 'd2', 'd3', 'd4']) {
      const { fh } = await root.openFile(`beneath/${d}/x`);
      await fh.close();
      assert.ok(root.openDirs <= 2, `${root.openDirs} directories held`);
    }
    fs.symlinkSync('d4', path.join(store, 'beneath/link'));
    await assert.rejects(root.openFile('beneath/link/x'), (e: unknown) => e instanceof StrataError && e.errno === Errno.ELOOP);
    // d4 replaced under its held fd: the held one still answers (the caller's identity check refuses it) until forgotten.
    const opened = await root.openFile('beneath/d4/x');
    await opened.fh.close();
    fs.renameSync(path.join(store, 'beneath/d4'), path.join(store, 'beneath/d4.old'));
    fs.mkdirSync(path.join(store, 'beneath/d4'));
    fs.writeFileSync(path.join(store, 'beneath/d4/x'), 'new');
    const stale = await root.openFile('beneath/d4/x');
    assert.equal(stale.st.ino, opened.st.ino);
    await stale.fh.close();
    root.forgetDirOf('beneath/d4/x');
    const fresh = await root.openFile('beneath/d4/x');
    assert.notEqual(fresh.st.ino, opened.st.ino);
    await fresh.fh.close();
    // A missing file drops its parent too (it may be a directory replaced since).
    await assert.rejects(root.openFile('beneath/d1/none'), (e: unknown) => e instanceof StrataError && e.errno === Errno.ENOENT);
  } finally {
    await root.close();
    fs.rmSync(path.join(store, 'beneath'), { recursive: true, force: true });
  }
});

for (const inLine of [true, false]) {
  test(`beneath (opens ${inLine ? 'in line' : 'on the thread pool, as on a network filesystem'}): a new directory is one open from its nearest held ancestor; a failed open forgets the ancestors too`, async () => {
    await heldAncestors(inLine);
  });
}

async function heldAncestors(inLine: boolean): Promise<void> {
  const root = await BeneathRoot.open(store, 8, inLine);
  fs.mkdirSync(path.join(store, 'tree/x/y1'), { recursive: true });
  fs.mkdirSync(path.join(store, 'tree/x/y2'));
  fs.writeFileSync(path.join(store, 'tree/x/y1/f'), 'one');
  fs.writeFileSync(path.join(store, 'tree/x/y2/f'), 'two');
  try {
    assert.equal(root.local, inLine);
    // The store of the tests is on a local filesystem (ext4, tmpfs, ...): by default opens are made in line.
    const detected = await BeneathRoot.open(store);
    assert.equal(detected.local, true);
    await detected.close();
    let before = root.opens;
    const a = await root.openFd('tree/x/y1/f');
    assert.equal(root.opens - before, 4, 'tree, x, y1, then the file');
    assert.equal(fs.readFileSync(`/proc/self/fd/${a.fd}`, 'utf8'), 'one');
    fs.closeSync(a.fd);
    before = root.opens;
    const b = await root.openFd('tree/x/y2/f');
    assert.equal(root.opens - before, 2, 'y2 from the held tree/x, then the file');
    assert.equal(b.st.size, 3n);
    fs.closeSync(b.fd);
    // tree/x renamed away and made again: held, it still answers with the old tree until a failure forgets it and its ancestors.
    fs.renameSync(path.join(store, 'tree/x'), path.join(store, 'tree/x.old'));
    fs.mkdirSync(path.join(store, 'tree/x/y3'), { recursive: true });
    fs.writeFileSync(path.join(store, 'tree/x/y3/f'), 'three');
    await assert.rejects(root.openFd('tree/x/y3/f'), (e: unknown) => e instanceof StrataError && e.errno === Errno.ENOENT);
    const c = await root.openFd('tree/x/y3/f');
    assert.equal(fs.readFileSync(`/proc/self/fd/${c.fd}`, 'utf8'), 'three');
    fs.closeSync(c.fd);
    // Not a regular file, or a symlink as the file or on the way: refused, nothing left open.
    fs.symlinkSync('y3', path.join(store, 'tree/x/link'));
    fs.symlinkSync('f', path.join(store, 'tree/x/y3/flink'));
    await assert.rejects(root.openFd('tree/x/link/f'), (e: unknown) => e instanceof StrataError && e.errno === Errno.ELOOP);
    await assert.rejects(root.openFd('tree/x/y3/flink'), (e: unknown) => e instanceof StrataError && e.errno === Errno.ELOOP);
    await assert.rejects(root.openFd('tree/x/y3'), (e: unknown) => e instanceof StrataError && /not a regular file/.test(e.message));
    assert.ok(root.openDirs <= 8);
    // The FileHandle form: the same file, the same checks.
    const { fh, st } = await root.openFile('tree/x/y3/f');
    assert.equal(st.size, 5n);
    await fh.close();
    await assert.rejects(root.openFile('tree/x/y3/flink'), (e: unknown) => e instanceof StrataError && e.errno === Errno.ELOOP);
  } finally {
    await root.close();
    fs.rmSync(path.join(store, 'tree'), { recursive: true, force: true });
  }
}

test('wholeFd: the store file itself as a bare descriptor, checked against the map; closed once; a swapped file refused', async () => {
  const fake = new SiblingResolver(true);
  const view = await StoreView.open(store, fake);
  try {
    const r = view.reader(LAYER);
    const paths = [1, 2, 3].map((i) => Buffer.from(`/a/b/${name(i)}`));
    const handles = await r.wholeFds(paths);
    assert.equal(fake.calls, 1, 'one call brings the maps of all three');
    for (const [j, h] of handles.entries()) {
      assert.ok(h, `${paths[j].toString()} handed`);
      const into = Buffer.alloc(200);
      const { bytesRead } = await h.read(into, 0, into.length, 0);
      assert.equal(into.subarray(0, bytesRead).toString(), bodyOf(j + 1));
      await h.close();
      await h.close();
      await assert.rejects(h.read(into, 0, 1, 0), (e: unknown) => (e as NodeJS.ErrnoException).code === 'EBADF');
    }
    // Replaced since it was mapped: refused (and read through the resolver from then on).
    const victim = path.join(store, 'layer/a/b', name(5));
    await r.wholeFd(Buffer.from(`/a/b/${name(4)}`)).then((h) => h?.close());
    fs.renameSync(victim, `${victim}.old`);
    fs.writeFileSync(victim, bodyOf(5));
    try {
      assert.equal(await r.wholeFd(Buffer.from(`/a/b/${name(5)}`)), undefined);
      assert.equal(view.counters.refusals, 1);
    } finally {
      fs.renameSync(`${victim}.old`, victim);
    }
  } finally {
    await view.close();
  }
});
