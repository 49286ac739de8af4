import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExtentMap, FileExtent, StoreFileIdentity, StoreIdentity } from '@strata/client';
import { GrpcCode, StrataError, Errno } from '@strata/errors';
import type { LayerRef } from '@strata/layers';
import { layerRefToProto, type AnswerOf, type Operation, type RequestOf } from '@strata/protocol';
import { ChunkCache, CHUNK_SIZE } from '../mount/chunk-cache';
import { FileData } from '../mount/file-data';
import { StoreView, type StoreViewClient } from './store-view';
import { storeComponents } from './beneath';

/**
 * A store view over a real store folder, with a resolver stand-in that maps
 * a `dir:` layer's files as the resolver does (one data run, the file's
 * lstat as its identity) — or, for the hostile cases, names whatever the
 * test wants it to.
 */

let store: string;
let outside: string;
const big = randomBytes(3 * CHUNK_SIZE + 12_345);

function identityOf(rel: string, follow = false): StoreFileIdentity {
  const p = path.join(store, rel);
  const st = follow ? fs.statSync(p, { bigint: true }) : fs.lstatSync(p, { bigint: true });
  return { path: rel, dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeSec: Number(st.mtimeNs / 1_000_000_000n), mtimeNsec: Number(st.mtimeNs % 1_000_000_000n) };
}

class FakeResolver implements StoreViewClient {
  maps = 0;
  /** Replaces the answer for a path (a hostile or confused resolver). */
  override?: (p: string, offset: number) => ExtentMap | undefined;
  /** Runs after a map is made and before it is returned (a file swapped in between). */
  afterMap?: () => void;
  refuse?: StrataError;

  constructor(private readonly id: string) {}

  async storeIdentity(): Promise<StoreIdentity> {
    return { storeId: this.id, marker: identityOf('.strata/store-id') };
  }

  async extentMap(_ref: LayerRef, p: Buffer, offset: number): Promise<ExtentMap> {
    this.maps++;
    if (this.refuse) throw this.refuse;
    const special = this.override?.(p.toString(), offset);
    if (special) return special;
    const rel = `layer${p.toString()}`;
    const id = identityOf(rel);
    const n = Math.max(0, id.size - offset);
    const m: ExtentMap = {
      storeId: this.id,
      attr: { ino: id.ino, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: id.size, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 },
      files: [id],
      extents: n > 0 ? [{ kind: 'data', offset, length: n, file: 0, fileOffset: offset }] : [],
      offset,
      length: n,
      eof: true,
    };
    this.afterMap?.();
    return m;
  }
}

function customMap(id: string, size: number, files: StoreFileIdentity[], extents: FileExtent[]): ExtentMap {
  return {
    storeId: id,
    attr: { ino: 1, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 },
    files,
    extents,
    offset: 0,
    length: size,
    eof: true,
  };
}

let storeId: string;

before(() => {
  store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-store-view-'));
  outside = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-store-view-outside-'));
  storeId = randomUUID();
  fs.mkdirSync(path.join(store, '.strata'));
  fs.writeFileSync(path.join(store, '.strata/store-id'), `${storeId}\n`);
  fs.mkdirSync(path.join(store, 'layer/sub'), { recursive: true });
  fs.writeFileSync(path.join(store, 'layer/big'), big);
  fs.writeFileSync(path.join(store, 'layer/sub/small'), 'hello, store\n');
  fs.writeFileSync(path.join(outside, 'secret'), 'not yours\n');
  fs.symlinkSync(path.join(outside, 'secret'), path.join(store, 'layer/link'));
  fs.symlinkSync(outside, path.join(store, 'layer/dirlink'));
});

after(() => {
  fs.rmSync(store, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

const noFallback = (): Promise<Buffer> => Promise.reject(new Error('read through the resolver where the store should have served'));
const LAYER: LayerRef = { id: 7 };

test('a dir: layer read through the view: bytes identical, short at the end, one map for the whole file', async () => {
  const fake = new FakeResolver(storeId);
  const view = await StoreView.open(store, fake);
  try {
    assert.equal(view.devComparable, true);
    const r = view.reader(LAYER);
    for (const [offset, length] of [[0, CHUNK_SIZE], [CHUNK_SIZE, CHUNK_SIZE], [3 * CHUNK_SIZE, CHUNK_SIZE], [12_345, 77], [big.length - 5, 100], [big.length + 10, 100]]) {
      const got = await r.read(Buffer.from('/big'), offset, length, noFallback);
      assert.ok(got.equals(big.subarray(offset, offset + length)), `${offset}+${length}`);
    }
    assert.equal(fake.maps, 1);
    assert.equal((await r.read(Buffer.from('/sub/small'), 0, 4096, noFallback)).toString(), 'hello, store\n');
    assert.equal(view.counters.refusals, 0);
    assert.equal(view.counters.directBytes, 2 * CHUNK_SIZE + 12_345 + 77 + 5 + 13);
  } finally {
    await view.close();
  }
});

test('through FileData: a sealed mount reads its chunks from the store, a LIVE one through the Session', async () => {
  const view = await StoreView.open(store, new FakeResolver(storeId));
  try {
    let asked = 0;
    const ask = (async <K extends Operation>(op: K, req: RequestOf<K>): Promise<AnswerOf<K>> => {
      asked++;
      assert.equal(op, 'read');
      const q = req as RequestOf<'read'>;
      return { offset: q.offset, data: big.subarray(q.offset, q.offset + q.length), eof: q.offset + q.length >= big.length } as AnswerOf<K>;
    }) as ConstructorParameters<typeof FileData>[0]['ask'];
    const sealed = new FileData({ ask, layer: layerRefToProto(LAYER), chunks: new ChunkCache(64 << 20), mountKey: 'm1', storeView: view });
    const h = { key: 'big', path: Buffer.from('/big') };
    for (let i = 0; i < 4; i++) assert.ok((await sealed.chunk(h, i)).equals(big.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)));
    assert.equal(asked, 0);
    const live = new FileData({ ask, layer: layerRefToProto(LAYER), chunks: new ChunkCache(64 << 20), mountKey: 'm2', ttlMs: 1000, storeView: view });
    assert.ok((await live.chunk(h, 1)).equals(big.subarray(CHUNK_SIZE, 2 * CHUNK_SIZE)));
    assert.equal(asked, 1);
  } finally {
    await view.close();
  }
});

test('a file swapped after it was mapped is refused by the identity check and read through the resolver', async () => {
  const fake = new FakeResolver(storeId);
  const view = await StoreView.open(store, fake);
  const victim = path.join(store, 'layer/swap');
  fs.writeFileSync(victim, 'mapped bytes');
  try {
    fake.afterMap = () => {
      // Same size, another inode: only the identity tells them apart.
      fs.writeFileSync(`${victim}.new`, 'SWAPPED!!!!!');
      fs.renameSync(`${victim}.new`, victim);
    };
    let fallbacks = 0;
    const fallback = async (): Promise<Buffer> => {
      fallbacks++;
      return Buffer.from('from resolver');
    };
    const r = view.reader(LAYER);
    assert.equal((await r.read(Buffer.from('/swap'), 0, 100, fallback)).toString(), 'from resolver');
    assert.equal(view.counters.refusals, 1);
    // Not tried again on every read.
    fake.afterMap = undefined;
    assert.equal((await r.read(Buffer.from('/swap'), 0, 100, fallback)).toString(), 'from resolver');
    assert.equal(fallbacks, 2);
    assert.equal(view.counters.refusals, 1);
    // Written in place (same inode, another size and mtime): refused too, on a fresh reader.
    const inPlace = new FakeResolver(storeId);
    const view2 = await StoreView.open(store, inPlace);
    try {
      inPlace.afterMap = () => fs.appendFileSync(victim, 'more');
      assert.equal((await view2.reader(LAYER).read(Buffer.from('/swap'), 0, 100, fallback)).toString(), 'from resolver');
      assert.equal(view2.counters.refusals, 1);
    } finally {
      await view2.close();
    }
  } finally {
    await view.close();
  }
});

test('a symlink out of the store is never followed: not as the file, not as a directory on its path, not by ".."', async () => {
  const fake = new FakeResolver(storeId);
  const view = await StoreView.open(store, fake);
  try {
    const secret = identityOf('layer/link', true);
    const names: Record<string, string> = { '/a': 'layer/link', '/b': 'layer/dirlink/secret', '/c': 'layer/../../secret', '/d': '/etc/passwd' };
    fake.override = (p) => customMap(storeId, secret.size, [{ ...secret, path: names[p] }], [{ kind: 'data', offset: 0, length: secret.size, file: 0, fileOffset: 0 }]);
    for (const p of Object.keys(names)) {
      const got = await view.reader(LAYER).read(Buffer.from(p), 0, 100, async () => Buffer.from('from resolver'));
      assert.equal(got.toString(), 'from resolver', `${p} -> ${names[p]}`);
    }
    assert.equal(view.counters.refusals, 4);
    assert.throws(() => storeComponents('a//b'), /not a plain path/);
    assert.throws(() => storeComponents('./a'), /not a plain path/);
  } finally {
    await view.close();
  }
});

test('holes read as zeros and unmapped runs come from the resolver, in place', async () => {
  const fake = new FakeResolver(storeId);
  const view = await StoreView.open(store, fake);
  try {
    const small = identityOf('layer/sub/small');
    fake.override = () =>
      customMap(storeId, 30, [small], [
        { kind: 'data', offset: 0, length: 5, file: 0, fileOffset: 7 },
        { kind: 'hole', offset: 5, length: 10 },
        { kind: 'unmapped', offset: 15, length: 10, reason: 'compressed cluster' },
        { kind: 'data', offset: 25, length: 5, file: 0, fileOffset: 0 },
      ]);
    const asked: [number, number][] = [];
    const got = await view.reader(LAYER).read(Buffer.from('/x'), 2, 100, async (o, n) => {
      asked.push([o, n]);
      return Buffer.alloc(n, 0x55);
    });
    assert.deepEqual(asked, [[15, 10]]);
    assert.ok(got.equals(Buffer.concat([Buffer.from('ore'), Buffer.alloc(10), Buffer.alloc(10, 0x55), Buffer.from('hello')])), got.toString('hex'));
  } finally {
    await view.close();
  }
});

test('a layer the resolver will not map (LIVE) is read through the resolver, asked once', async () => {
  const fake = new FakeResolver(storeId);
  fake.refuse = StrataError.precondition('no extent maps of a LIVE chain', Errno.EOPNOTSUPP);
  assert.equal(fake.refuse.code, GrpcCode.FAILED_PRECONDITION);
  const view = await StoreView.open(store, fake);
  try {
    const r = view.reader(LAYER);
    for (let i = 0; i < 3; i++) assert.equal((await r.read(Buffer.from('/big'), 0, 10, async () => Buffer.from('resolver'))).toString(), 'resolver');
    assert.equal(fake.maps, 1);
  } finally {
    await view.close();
  }
});

test('the view refuses a folder that is not the store: another id, a copy of it, no marker', async () => {
  await assert.rejects(StoreView.open(store, new FakeResolver(randomUUID())), (e: unknown) => e instanceof StrataError && e.code === GrpcCode.FAILED_PRECONDITION && /not the image store/.test(e.message));
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-store-copy-'));
  try {
    fs.cpSync(store, copy, { recursive: true, verbatimSymlinks: true });
    await assert.rejects(StoreView.open(copy, new FakeResolver(storeId)), (e: unknown) => e instanceof StrataError && /copy of the store/.test(e.message));
    fs.rmSync(path.join(copy, '.strata'), { recursive: true });
    await assert.rejects(StoreView.open(copy, new FakeResolver(storeId)), (e: unknown) => e instanceof StrataError && /cannot be opened/.test(e.message));
  } finally {
    fs.rmSync(copy, { recursive: true, force: true });
  }
});

test('a failed map (no resolver answered) is that read alone: read through the resolver, mapped again next time', async () => {
  const fake = new FakeResolver(storeId);
  const view = await StoreView.open(store, fake);
  try {
    const r = view.reader(LAYER);
    fake.refuse = new StrataError(Errno.EIO, 'no resolver answered', { code: GrpcCode.UNAVAILABLE });
    assert.equal((await r.read(Buffer.from('/sub/small'), 0, 5, async () => Buffer.from('resolver'))).toString(), 'resolver');
    fake.refuse = undefined;
    assert.equal((await r.read(Buffer.from('/sub/small'), 0, 5, noFallback)).toString(), 'hello');
    assert.equal(view.counters.refusals, 0);
    assert.equal(fake.maps, 2);
  } finally {
    await view.close();
  }
});

test('hostile maps: 2000 random ones, every read gives the fallback or the store bytes the map names, never a crash', async () => {
  const fake = new FakeResolver(storeId);
  const view = await StoreView.open(store, fake);
  let seed = 99;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const bigId = identityOf('layer/big');
  const paths = ['layer/big', 'layer/link', 'layer/dirlink/secret', '../x', 'layer/sub', 'layer/nope', '.strata/store-id'];
  try {
    for (let i = 0; i < 2000; i++) {
      const size = rnd(3) === 0 ? big.length : rnd(1 << 22);
      const files = [{ ...bigId, path: paths[rnd(paths.length)], ...(rnd(4) === 0 ? { ino: rnd(1000) } : {}), ...(rnd(4) === 0 ? { size: rnd(1 << 22) } : {}) }];
      const extents: FileExtent[] = [];
      let pos = 0;
      for (let j = 1 + rnd(4); j > 0 && pos < size; j--) {
        const length = j === 1 ? size - pos : 1 + rnd(size - pos);
        const kind = rnd(3);
        extents.push(kind === 0 ? { kind: 'data', offset: pos, length, file: 0, fileOffset: rnd(3) === 0 ? rnd(1 << 23) : pos } : kind === 1 ? { kind: 'hole', offset: pos, length } : { kind: 'unmapped', offset: pos, length, reason: 'x' });
        pos += length;
      }
      fake.override = () => customMap(storeId, size, files, extents);
      const offset = rnd(size + 10);
      const length = 1 + rnd(1 << 20);
      let whole = false;
      const got = await view.reader(LAYER).read(Buffer.from(`/f${i}`), offset, length, async (o, n) => {
        if (o === offset && n === length) whole = true;
        return Buffer.alloc(n, 0xee);
      });
      if (whole) {
        assert.ok(got.equals(Buffer.alloc(length, 0xee)));
        continue;
      }
      // Read from the store: exactly what the map says, clipped to the file's size.
      const end = Math.max(offset, Math.min(offset + length, size));
      const expected = Buffer.alloc(end - offset);
      for (const e of extents) {
        const [from, to] = [Math.max(offset, e.offset), Math.min(end, e.offset + e.length)];
        if (from >= to) continue;
        if (e.kind === 'data') big.copy(expected, from - offset, e.fileOffset + (from - e.offset), e.fileOffset + (to - e.offset));
        else expected.fill(e.kind === 'hole' ? 0 : 0xee, from - offset, to - offset);
      }
      assert.ok(got.equals(expected), `map ${i}: ${offset}+${length} of ${size}`);
    }
  } finally {
    await view.close();
  }
});

test('device numbers compare only where the store is seen on the resolver\'s own mount', async () => {
  // Another mount of the same export (NFS on another host): the marker's st_dev differs, its inode does not.
  const elsewhere = new FakeResolver(storeId);
  const shift = (f: StoreFileIdentity): StoreFileIdentity => ({ ...f, dev: f.dev + 1 });
  elsewhere.storeIdentity = async () => ({ storeId, marker: shift(identityOf('.strata/store-id')) });
  const small = identityOf('layer/sub/small');
  elsewhere.override = () => customMap(storeId, 13, [shift(small)], [{ kind: 'data', offset: 0, length: 13, file: 0, fileOffset: 0 }]);
  const remote = await StoreView.open(store, elsewhere);
  try {
    assert.equal(remote.devComparable, false);
    assert.equal((await remote.reader(LAYER).read(Buffer.from('/x'), 0, 100, noFallback)).toString(), 'hello, store\n');
  } finally {
    await remote.close();
  }
  // The same mount: a file on another device than the map says is not the file mapped.
  const here = new FakeResolver(storeId);
  here.override = () => customMap(storeId, 13, [shift(small)], [{ kind: 'data', offset: 0, length: 13, file: 0, fileOffset: 0 }]);
  const local = await StoreView.open(store, here);
  try {
    assert.equal(local.devComparable, true);
    assert.equal((await local.reader(LAYER).read(Buffer.from('/x'), 0, 100, async () => Buffer.from('resolver'))).toString(), 'resolver');
    assert.equal(local.counters.refusals, 1);
  } finally {
    await local.close();
  }
});
