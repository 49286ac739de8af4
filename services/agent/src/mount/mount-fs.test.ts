import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { SessionAnswer, SessionPayload } from '@strata/client';
import { Errno, StrataError } from '@strata/errors';
import type { Attr, DirEntry, WalkEntry } from '@strata/protocol';
import { CHUNK_SIZE, ChunkCache } from './chunk-cache';
import { MountFs } from './mount-fs';
import { BLOCK_SIZE } from './read-policy';

const DIR = 0o040755;
const FILE = 0o100644;

function attr(mode: number, size = 0, ino = 1): Attr {
  return { ino, mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };
}

/** A tree served the way a resolver would answer Session requests, recording what was asked. */
class FakeResolver {
  readonly asked: SessionPayload[] = [];
  down = false;
  constructor(readonly files: Map<string, Buffer>) {}

  private attrOf(p: string): Attr | undefined {
    if (this.files.has(p)) return attr(FILE, this.files.get(p)!.length, p.length);
    const prefix = p === '/' ? '/' : `${p}/`;
    for (const k of this.files.keys()) if (k.startsWith(prefix)) return attr(DIR, 0, p.length);
    return undefined;
  }

  private children(p: string): DirEntry[] {
    const prefix = p === '/' ? '/' : `${p}/`;
    const names = new Set<string>();
    for (const k of this.files.keys()) if (k.startsWith(prefix)) names.add(k.slice(prefix.length).split('/')[0]);
    return [...names].sort().map((n) => ({ name: Buffer.from(n), attr: this.attrOf(prefix + n) }));
  }

  walk(): WalkEntry[] {
    const out: WalkEntry[] = [];
    const visit = (p: string): void => {
      const a = this.attrOf(p)!;
      out.push({ path: Buffer.from(p), attr: a, linkTarget: Buffer.alloc(0) });
      if (a.mode === DIR) for (const c of this.children(p)) visit(p === '/' ? `/${c.name.toString()}` : `${p}/${c.name.toString()}`);
    };
    visit('/');
    return out;
  }

  async request(payload: SessionPayload): Promise<SessionAnswer> {
    this.asked.push(payload);
    await new Promise((r) => setImmediate(r));
    if (this.down) throw new StrataError(Errno.EIO, 'no resolver answered');
    switch (payload.$case) {
      case 'stat': {
        const a = this.attrOf(payload.stat.path.toString());
        if (!a) throw new StrataError(Errno.ENOENT, 'no such file');
        return { $case: 'stat', stat: { attr: a } };
      }
      case 'readDir': {
        const p = payload.readDir.path.toString();
        return { $case: 'readDir', readDir: { entries: this.children(p), eof: true, dirAttr: this.attrOf(p) } };
      }
      case 'read': {
        const q = payload.read;
        const data = this.files.get(q.path.toString())!;
        const slice = data.subarray(q.offset, q.offset + q.length);
        return { $case: 'read', read: { offset: q.offset, data: Buffer.from(slice), eof: q.offset + slice.length >= data.length } };
      }
      default:
        throw new Error(`unexpected ${payload.$case}`);
    }
  }

  reads(): { path: string; offset: number; length: number }[] {
    return this.asked.flatMap((p) => (p.$case === 'read' ? [{ path: p.read.path.toString(), offset: p.read.offset, length: p.read.length }] : []));
  }
}

function mount(files: Map<string, Buffer>, live = false): { fs: MountFs; resolver: FakeResolver } {
  const resolver = new FakeResolver(files);
  const fs = new MountFs({
    session: resolver,
    layerId: 7,
    live,
    chunks: new ChunkCache(64 << 20),
    mountKey: 'm1',
    attrEntries: 10_000,
    counters: { attrHits: 0, attrMisses: 0, bytesRead: 0 },
  });
  return { fs, resolver };
}

function patterned(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('a Walk prefetch answers every stat and readdir without asking again; an unfinished one keeps only complete listings', async () => {
  const files = new Map<string, Buffer>();
  for (const d of ['a', 'b', 'c']) for (const f of ['x', 'y']) files.set(`/${d}/${f}`, Buffer.from(`${d}${f}`));
  files.set('/a/deep/z', Buffer.from('z'));
  const { fs, resolver } = mount(files);
  const walk = resolver.walk();
  const full = await fs.prefetch((async function* () { yield walk; })(), 1000);
  assert.deepEqual(full, { entries: walk.length, complete: true });
  for (const e of walk) assert.deepEqual(await fs.stat(e.path), e.attr);
  assert.deepEqual((await fs.readdir(Buffer.from('/a'))).entries.map((e) => e.name.toString()), ['deep', 'x', 'y']);
  assert.deepEqual((await fs.readdir(Buffer.from('/'))).entries.map((e) => e.name.toString()), ['a', 'b', 'c']);
  assert.equal(resolver.asked.length, 0, 'nothing went to the resolver');

  const { fs: partial, resolver: r2 } = mount(files);
  const cut = await partial.prefetch((async function* () { yield walk; })(), 5); // "/", /a, /a/deep, /a/deep/z, /a/x
  assert.deepEqual(cut, { entries: 5, complete: false });
  assert.deepEqual((await partial.readdir(Buffer.from('/a/deep'))).entries.map((e) => e.name.toString()), ['z']);
  assert.equal(r2.asked.length, 0, '/a/deep was complete');
  assert.deepEqual((await partial.readdir(Buffer.from('/a'))).entries.map((e) => e.name.toString()), ['deep', 'x', 'y']);
  assert.equal(r2.asked.length, 1, '/a was not complete: asked once');
});

test('reads return exact bytes; sequential readers move aligned 1 MiB chunks, jumps fetch 64 KiB blocks', async () => {
  const big = patterned(3 * CHUNK_SIZE + 1234, 1);
  const { fs, resolver } = mount(new Map([['/big', big]]));
  const out = Buffer.alloc(big.length);
  for (let pos = 0; pos < big.length; pos += 128 * 1024) {
    const n = await fs.read(Buffer.from('/big'), out.subarray(pos), pos, Math.min(128 * 1024, big.length - pos));
    assert.equal(n, Math.min(128 * 1024, big.length - pos));
  }
  assert.equal(sha(out), sha(big));
  assert.equal(await fs.read(Buffer.from('/big'), Buffer.alloc(10), big.length, 10), 0, 'EOF');
  for (const r of resolver.reads()) assert.deepEqual([r.offset % CHUNK_SIZE, r.length], [0, CHUNK_SIZE]);
  assert.equal(new Set(resolver.reads().map((r) => r.offset)).size, resolver.reads().length, 'each chunk fetched once');

  const { fs: rnd, resolver: r2 } = mount(new Map([['/big', big]]));
  const at = 2 * CHUNK_SIZE + 5 * BLOCK_SIZE + 100;
  const b = Buffer.alloc(4096);
  assert.equal(await rnd.read(Buffer.from('/big'), b, at, 4096), 4096);
  assert.deepEqual(b, big.subarray(at, at + 4096));
  assert.deepEqual(r2.reads(), [{ path: '/big', offset: 2 * CHUNK_SIZE + 5 * BLOCK_SIZE, length: BLOCK_SIZE }]);
});

test('reading the files of a directory in order fetches the next files ahead', async () => {
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 10; i++) files.set(`/d/f${i}`, Buffer.from(`file ${i}`));
  const { fs, resolver } = mount(files);
  await fs.readdir(Buffer.from('/d'));
  const buf = Buffer.alloc(100);
  await fs.read(Buffer.from('/d/f0'), buf, 0, 100);
  await fs.read(Buffer.from('/d/f1'), buf, 0, 100);
  await new Promise((r) => setTimeout(r, 20));
  const fetched = new Set(resolver.reads().map((r) => r.path));
  for (let i = 0; i < 10; i++) assert.ok(fetched.has(`/d/f${i}`), `f${i} fetched`);
  const before = resolver.reads().length;
  for (let i = 2; i < 10; i++) {
    const n = await fs.read(Buffer.from(`/d/f${i}`), buf, 0, 100);
    assert.equal(buf.subarray(0, n).toString(), `file ${i}`);
  }
  assert.equal(resolver.reads().length, before, 'the later reads were all answered from the prefetched chunks');
});

test('facts about the tree are remembered, outages are not', async () => {
  const { fs, resolver } = mount(new Map([['/f', Buffer.from('x')]]));
  await assert.rejects(fs.stat(Buffer.from('/nope')), (e: unknown) => e instanceof StrataError && e.errno === Errno.ENOENT);
  await assert.rejects(fs.stat(Buffer.from('/nope')), (e: unknown) => e instanceof StrataError && e.errno === Errno.ENOENT);
  assert.equal(resolver.asked.length, 1, 'ENOENT cached');
  resolver.down = true;
  await assert.rejects(fs.stat(Buffer.from('/other')), (e: unknown) => e instanceof StrataError && e.errno === Errno.EIO);
  resolver.down = false;
  assert.equal((await fs.stat(Buffer.from('/f'))).size, 1);
  await assert.rejects(fs.stat(Buffer.from('/other')), (e: unknown) => e instanceof StrataError && e.errno === Errno.ENOENT);
  assert.equal(resolver.asked.filter((p) => p.$case === 'stat' && p.stat.path.toString() === '/other').length, 2, 'EIO was not cached');
});
