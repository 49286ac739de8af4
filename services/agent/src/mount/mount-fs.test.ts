import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { SessionAnswer, SessionPayload } from '@strata/client';
import { Errno, StrataError } from '@strata/errors';
import { LIVE_FRESHNESS } from '@strata/layers';
import type { Attr, DirEntry, WalkEntry } from '@strata/protocol';
import { CHUNK_SIZE, ChunkCache } from './chunk-cache';
import type { Clock } from './expiry';
import { MountFs, PREFETCH_GIVE_WAY_MS, PREFETCH_SLICE } from './mount-fs';
import { PAGE_SIZE } from './read-policy';

const DIR = 0o040755;
const FILE = 0o100644;
const LINK = 0o120777;

function attr(mode: number, size = 0, ino = 1): Attr {
  return { ino, mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };
}

/** A tree served the way a resolver would answer Session requests, recording what was asked. */
class FakeResolver {
  readonly asked: SessionPayload[] = [];
  down = false;
  /** Answers every request with a readLink answer, as a confused or hostile peer might. */
  confused = false;
  /** Reads are answered once this settles (a slow store). */
  holdReads?: Promise<void>;
  private readonly pending = new Set<Promise<unknown>>();
  constructor(
    readonly files: Map<string, Buffer>,
    readonly links = new Map<string, Buffer>(),
  ) {}

  private attrOf(p: string): Attr | undefined {
    if (this.files.has(p)) return attr(FILE, this.files.get(p)!.length, p.length);
    if (this.links.has(p)) return attr(LINK, this.links.get(p)!.length, p.length);
    const prefix = p === '/' ? '/' : `${p}/`;
    for (const k of this.paths()) if (k.startsWith(prefix)) return attr(DIR, 0, p.length);
    return undefined;
  }

  private paths(): string[] {
    return [...this.files.keys(), ...this.links.keys()];
  }

  private children(p: string): DirEntry[] {
    const prefix = p === '/' ? '/' : `${p}/`;
    const names = new Set<string>();
    for (const k of this.paths()) if (k.startsWith(prefix)) names.add(k.slice(prefix.length).split('/')[0]);
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

  request(payload: SessionPayload): Promise<SessionAnswer> {
    this.asked.push(payload);
    const p = this.answer(payload);
    this.pending.add(p);
    const done = (): void => void this.pending.delete(p);
    p.then(done, done);
    return p;
  }

  /** Resolves once every request asked so far (and any they led to) has been answered: prefetches included. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private async answer(payload: SessionPayload): Promise<SessionAnswer> {
    await new Promise((r) => setImmediate(r));
    if (this.down) throw new StrataError(Errno.EIO, 'no resolver answered');
    if (this.confused) return { $case: 'readLink', readLink: { target: Buffer.from('x') } };
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
        await this.holdReads;
        const q = payload.read;
        const data = this.files.get(q.path.toString())!;
        const slice = data.subarray(q.offset, q.offset + q.length);
        return { $case: 'read', read: { offset: q.offset, data: Buffer.from(slice), eof: q.offset + slice.length >= data.length } };
      }
      case 'readLink': {
        const target = this.links.get(payload.readLink.path.toString());
        if (!target) throw new StrataError(Errno.EINVAL, 'not a symlink');
        return { $case: 'readLink', readLink: { target } };
      }
      default:
        throw new Error(`unexpected ${payload.$case}`);
    }
  }

  reads(): { path: string; offset: number; length: number }[] {
    return this.asked.flatMap((p) => (p.$case === 'read' ? [{ path: p.read.path.toString(), offset: p.read.offset, length: p.read.length }] : []));
  }
}

/** Time the test moves by hand: cache lifetimes are checked without waiting for them. */
class ManualClock implements Clock {
  private ms = 1_000_000;
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

function mount(
  files: Map<string, Buffer>,
  o: { live?: boolean; clock?: Clock; links?: Map<string, Buffer> } = {},
): { fs: MountFs; resolver: FakeResolver } {
  const resolver = new FakeResolver(files, o.links);
  const fs = new MountFs({
    session: resolver,
    layerId: 7,
    live: o.live ?? false,
    chunks: new ChunkCache(64 << 20, o.clock),
    mountKey: 'm1',
    attrEntries: 10_000,
    counters: { attrHits: 0, attrMisses: 0, bytesRead: 0 },
    clock: o.clock,
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

test('reads return exact bytes; sequential readers move aligned 1 MiB chunks, jumps fetch the pages they read', async () => {
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

  const large = patterned(8 * CHUNK_SIZE + 1234, 2);
  const { fs: rnd, resolver: r2 } = mount(new Map([['/big', large]]));
  const at = 2 * CHUNK_SIZE + 5 * PAGE_SIZE;
  const b = Buffer.alloc(4096);
  assert.equal(await rnd.read(Buffer.from('/big'), b, at, 4096), 4096);
  assert.deepEqual(b, large.subarray(at, at + 4096));
  assert.deepEqual(r2.reads(), [{ path: '/big', offset: at, length: PAGE_SIZE }], 'a 4 KiB jump asks for its page alone');
  // Unaligned and across a page boundary: the pages it covers.
  const odd = 6 * CHUNK_SIZE - 100;
  const c = Buffer.alloc(300);
  assert.equal(await rnd.read(Buffer.from('/big'), c, odd, 300), 300);
  assert.deepEqual(c, large.subarray(odd, odd + 300));
  assert.deepEqual(r2.reads()[1], { path: '/big', offset: 6 * CHUNK_SIZE - PAGE_SIZE, length: 2 * PAGE_SIZE });
  // The file's last bytes by a jump: asked up to its end, and the read is short there.
  const tail = Buffer.alloc(4096);
  assert.equal(await rnd.read(Buffer.from('/big'), tail, large.length - 1000, 4096), 1000);
  assert.deepEqual(tail.subarray(0, 1000), large.subarray(large.length - 1000));
  assert.deepEqual(r2.reads()[2], { path: '/big', offset: 8 * CHUNK_SIZE, length: PAGE_SIZE });
  // A jump back to pages read before: the same piece, not fetched again.
  assert.equal(await rnd.read(Buffer.from('/big'), b, at, 4096), 4096);
  assert.deepEqual(b, large.subarray(at, at + 4096));
  assert.equal(r2.reads().length, 3);
});

test('the prefetch Walk is taken in slices and gives way to READs waiting for bytes, for a bounded time', async () => {
  const files = new Map<string, Buffer>([['/big', patterned(4096, 3)]]);
  for (let i = 0; i < 3 * PREFETCH_SLICE; i++) files.set(`/d/f${String(i).padStart(3, '0')}`, Buffer.from(`file ${i}`));
  const first = Buffer.from('/d/f000');
  const last = Buffer.from(`/d/f${3 * PREFETCH_SLICE - 1}`);
  const turns = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };
  const { fs, resolver } = mount(files);
  let release!: () => void;
  resolver.holdReads = new Promise<void>((r) => (release = r));
  const read = fs.read(Buffer.from('/big'), Buffer.alloc(4096), 0, 4096);
  while (resolver.reads().length === 0) await turns(1);
  const walked = fs.prefetch((async function* () { yield resolver.walk(); })(), 10_000);
  await turns(20);
  assert.ok(fs.cachedStat(first), 'the walk started');
  assert.equal(fs.cachedStat(last), undefined, 'and waits after its first slice while a READ waits for bytes');
  release();
  assert.equal(await read, 4096);
  assert.deepEqual(await walked, { entries: files.size + 2, complete: true });
  assert.ok(fs.cachedStat(last));

  // A READ that is never answered holds the walk back PREFETCH_GIVE_WAY_MS per slice, no longer.
  const stuck = mount(files);
  stuck.resolver.holdReads = new Promise<void>(() => undefined);
  void stuck.fs.read(Buffer.from('/big'), Buffer.alloc(4096), 0, 4096).catch(() => undefined);
  while (stuck.resolver.reads().length === 0) await turns(1);
  const started = performance.now();
  assert.equal((await stuck.fs.prefetch((async function* () { yield stuck.resolver.walk(); })(), 10_000)).complete, true);
  const ms = performance.now() - started;
  assert.ok(ms >= 3 * PREFETCH_GIVE_WAY_MS - 3 && ms < 3 * PREFETCH_GIVE_WAY_MS + 2000, `${ms} ms`);
});

test('reading the files of a directory in order fetches the next files ahead', async () => {
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 10; i++) files.set(`/d/f${i}`, Buffer.from(`file ${i}`));
  const { fs, resolver } = mount(files);
  await fs.readdir(Buffer.from('/d'));
  const buf = Buffer.alloc(100);
  await fs.read(Buffer.from('/d/f0'), buf, 0, 100);
  await fs.read(Buffer.from('/d/f1'), buf, 0, 100);
  await resolver.settled();
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

/** What a request asked for, as one comparable line. */
function describe(p: SessionPayload): string {
  switch (p.$case) {
    case 'stat':
      return `stat ${p.stat.path.toString()}`;
    case 'readDir':
      return `readDir ${p.readDir.path.toString()}`;
    case 'readLink':
      return `readLink ${p.readLink.path.toString()}`;
    case 'read':
      return `read ${p.read.path.toString()}@${p.read.offset}`;
    default:
      return p.$case;
  }
}

/** Asks everything the FUSE handlers would for the tree of the freshness test. */
async function askAll(fs: MountFs): Promise<void> {
  assert.equal((await fs.stat(Buffer.from('/d/f'))).size, CHUNK_SIZE + 10);
  await assert.rejects(fs.stat(Buffer.from('/nope')), (e: unknown) => e instanceof StrataError && e.errno === Errno.ENOENT);
  assert.deepEqual(await fs.readlink(Buffer.from('/d/l')), Buffer.from('f'));
  const buf = Buffer.alloc(100);
  assert.equal(await fs.read(Buffer.from('/d/f'), buf, 0, 100), 100);
  assert.deepEqual((await fs.readdir(Buffer.from('/d'))).entries.map((e) => e.name.toString()), ['f', 'l']);
}

test('a LIVE mount keeps answers (attributes, negative lookups, links, data, listings) for its part of the one-second budget, then asks again', async () => {
  const clock = new ManualClock();
  const files = new Map([['/d/f', patterned(CHUNK_SIZE + 10, 3)]]);
  const { fs, resolver } = mount(files, { live: true, clock, links: new Map([['/d/l', Buffer.from('f')]]) });
  await askAll(fs);
  await resolver.settled();
  const first = resolver.asked.length;
  const asked = new Set(resolver.asked.map(describe));
  for (const want of ['stat /d/f', 'stat /nope', 'readLink /d/l', 'read /d/f@0', 'read /d/f@1048576', 'readDir /d']) assert.ok(asked.has(want), want);

  clock.advance(LIVE_FRESHNESS.agentCacheMs);
  await askAll(fs);
  await resolver.settled();
  // (The longer read streak fetches one chunk further ahead: new, not asked again.)
  const repeated = resolver.asked.slice(first).map(describe).filter((d) => asked.has(d));
  assert.deepEqual(repeated, [], `everything still answered from the caches after ${LIVE_FRESHNESS.agentCacheMs} ms`);
  const second = resolver.asked.length;

  clock.advance(1);
  await askAll(fs);
  await resolver.settled();
  const again = resolver.asked.slice(second).map(describe);
  for (const want of ['stat /d/f', 'stat /nope', 'readLink /d/l', 'read /d/f@0', 'read /d/f@1048576', 'readDir /d']) assert.ok(again.includes(want), `${want} asked again once expired`);
});

test('a sealed mount keeps its answers however much time passes', async () => {
  const clock = new ManualClock();
  const files = new Map([['/d/f', patterned(CHUNK_SIZE + 10, 3)]]);
  const { fs, resolver } = mount(files, { clock, links: new Map([['/d/l', Buffer.from('f')]]) });
  await askAll(fs);
  await resolver.settled();
  const first = resolver.asked.length;
  clock.advance(30 * 24 * 3600 * 1000);
  await askAll(fs);
  assert.deepEqual(resolver.asked.slice(first).map(describe), []);
});

test('an answer of the wrong kind fails the operation with EIO and is not remembered', async () => {
  const { fs, resolver } = mount(new Map([['/d/f', Buffer.from('data')]]));
  resolver.confused = true;
  const eio = (e: unknown): boolean => e instanceof StrataError && e.errno === Errno.EIO;
  await assert.rejects(fs.stat(Buffer.from('/d/f')), eio);
  await assert.rejects(fs.readdir(Buffer.from('/d')), eio);
  await assert.rejects(fs.listXattr(Buffer.from('/d/f')), eio);
  await assert.rejects(fs.getXattr(Buffer.from('/d/f'), 'user.x'), eio);
  await assert.rejects(fs.statfs(), eio);
  resolver.confused = false;
  assert.equal((await fs.stat(Buffer.from('/d/f'))).size, 4);
  resolver.confused = true;
  await assert.rejects(fs.read(Buffer.from('/d/f'), Buffer.alloc(4), 0, 4), eio);
  resolver.confused = false;
  const buf = Buffer.alloc(4);
  assert.equal(await fs.read(Buffer.from('/d/f'), buf, 0, 4), 4);
  assert.equal(buf.toString(), 'data');
});
