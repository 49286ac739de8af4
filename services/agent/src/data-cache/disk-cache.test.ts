import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { createLogger } from '@strata/telemetry';
import { chainIdentity, type FileAttrs } from './chain-identity';
import { decodeEntry } from './cache-index';
import { DiskCache } from './disk-cache';
import { decodeRecord, writeRecord, type EntryRecord } from './entry-record';
import { decodeJournalLine, journalLine } from './record-journal';
import { MountData, type FileDataSink } from './mount-data';

const CHUNK = 64 * 1024;
const log = createLogger({ service: 'test', level: 'silent' });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-disk-cache-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => path.join(root, `agent-${++dirs}`);

class Sink implements FileDataSink {
  readonly given = new Map<bigint, Buffer>();
  readonly cleared: bigint[] = [];
  setFileData(ino: bigint, fd: number): 'passthrough' | 'pread' {
    const size = fs.fstatSync(fd).size;
    const b = Buffer.alloc(size);
    fs.readSync(fd, b, 0, size, 0);
    this.given.set(ino, b);
    return 'pread';
  }
  clearFileData(ino: bigint): void {
    this.cleared.push(ino);
  }
}

async function until(what: string, ok: () => boolean, tries = 2000): Promise<void> {
  for (let i = 0; i < tries && !ok(); i++) await sleep(5);
  assert.ok(ok(), what);
}

const named = (dir: string, suffix: string): string[] => fs.readdirSync(dir).filter((n) => n.endsWith(suffix));

/** The records on disk that read (snapshot, journal, an older agent's record files), by data file name. */
function records(dir: string): Map<string, EntryRecord> {
  const out = new Map<string, EntryRecord>();
  const text = (n: string): string => (fs.existsSync(path.join(dir, n)) ? fs.readFileSync(path.join(dir, n), 'utf8') : '');
  for (const line of text('INDEX').split('\n').slice(1)) {
    const e = decodeEntry(line);
    if (e !== undefined) out.set(e.name, e.record);
  }
  for (const line of text('JOURNAL').split('\n')) {
    const e = decodeJournalLine(line);
    if (e !== undefined) out.set(e.name, e.record);
  }
  for (const n of named(dir, '.meta')) {
    const r = decodeRecord(text(n));
    if (typeof r !== 'string') out.set(n.slice(0, -'.meta'.length), r);
  }
  return out;
}

/** The data files that have a record, by id. */
function keptById(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, r] of records(dir)) if (fs.existsSync(path.join(dir, `${name}.data`))) out.set(r.id, path.join(dir, `${name}.data`));
  return out;
}

/** The ids of the records in `dir` that read and name a file of the test chain. */
function recordIds(dir: string): Set<string> {
  return new Set([...records(dir).values()].map((r) => r.id).filter((id) => id.startsWith(`${CHAIN}\0/r`)));
}

/** A file of the layer as the resolver has it: its bytes and the attributes it reports. */
interface Source {
  bytes: Buffer;
  attrs: FileAttrs;
}

function source(ino: number, bytes: Buffer, mtimeNsec = 1): Source {
  return { bytes, attrs: { ino, size: bytes.length, mtimeSec: 1_700_000_000, mtimeNsec, ctimeSec: 1_700_000_000, ctimeNsec: 5 } };
}

const CHAIN = chainIdentity([
  { layerId: 7, generation: 3, createTimeMs: 1000 },
  { layerId: 2, generation: 1, createTimeMs: 900 },
]);

/** A mount of the chain over `cache`, counting the chunks its fills fetch. */
function mountOf(cache: DiskCache, files: Record<string, Source>, identity = CHAIN) {
  const fetched: string[] = [];
  const data = new MountData({
    cache,
    chainIdentity: identity,
    stat: async (p) => {
      const f = files[p.toString()];
      if (!f) throw new Error('no such file');
      return { ...f.attrs, atimeSec: Date.now() };
    },
    chunkSize: CHUNK,
    log,
    mountpoint: '/mnt/p',
    fetchChunk: async (p, i) => {
      fetched.push(`${p.toString()}#${i}`);
      return files[p.toString()].bytes.subarray(i * CHUNK, (i + 1) * CHUNK);
    },
  });
  const sink = new Sink();
  data.attach(sink);
  // As the kernel handler does: from the disk cache if it has the file (the mount's, or kept), else fetched elsewhere and the fill told.
  const read = async (ino: bigint, name: string, pos: number, len: number): Promise<number | undefined> => {
    const b = await data.readCached(ino, Buffer.from(name), pos, len);
    if (b === undefined) data.noteRead(ino, Buffer.from(name), files[name].bytes.length, pos, len);
    return b?.length;
  };
  /** A file read whole, in order and again from the start (as a reader would), until the session has it; bounded. */
  const readAll = async (ino: bigint, name: string): Promise<Buffer> => {
    const size = files[name].bytes.length;
    for (let pass = 0; pass < 50 && !sink.given.has(ino); pass++) {
      for (let pos = 0; pos < size && !sink.given.has(ino); pos += CHUNK) await read(ino, name, pos, Math.min(CHUNK, size - pos));
      await sleep(pass);
    }
    await until(`${name} handed over`, () => sink.given.has(ino));
    return sink.given.get(ino) as Buffer;
  };
  return { data, sink, fetched, read, readAll };
}

/** Fills `files` through one mount and waits until each has its record (kept for the next agent). */
async function filled(dir: string, maxBytes: number, files: Record<string, Source>, syncData = false): Promise<DiskCache> {
  const cache = await DiskCache.open(dir, maxBytes, { log, syncData });
  const m = mountOf(cache, files);
  let ino = 100n;
  for (const name of Object.keys(files)) {
    const got = await m.readAll(ino++, name);
    assert.ok(got.equals(files[name].bytes));
  }
  await until('records written', () => keptById(dir).size === Object.keys(files).length);
  return cache;
}

/** What a logger writes, read back from its file. */
function capturingLog() {
  const file = path.join(root, `log-${Math.random()}`);
  const fd = fs.openSync(file, 'w');
  const logger = createLogger({ service: 'test', level: 'info', destination: fd });
  return {
    logger,
    lines: (): Array<Record<string, unknown>> =>
      fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('DiskCache across restarts', () => {
  it('reuses a file an agent that never closed its cache left, without fetching it again', async () => {
    const dir = newDir();
    const files = { '/small': source(11, randomBytes(10_000)), '/big': source(12, randomBytes(5 * CHUNK + 99)) };
    await filled(dir, 64 * CHUNK, files);
    // The first agent is gone without close(): as after a crash.
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    assert.equal(cache.stats().loaded, 2);
    const m = mountOf(cache, files);
    assert.equal(m.data.holds(500n), false, 'not served before it is checked');
    assert.ok((await m.readAll(500n, '/small')).equals(files['/small'].bytes));
    assert.ok((await m.readAll(501n, '/big')).equals(files['/big'].bytes));
    assert.deepEqual(m.fetched, [], 'nothing fetched');
    assert.equal(cache.stats().reused, 2);
    assert.equal(cache.stats().fills, 0);
    assert.equal(m.data.holds(501n), true);
    const into = Buffer.alloc(100);
    assert.equal(await m.data.read(501n, into, 3 * CHUNK, 100), 100);
    assert.ok(into.equals(files['/big'].bytes.subarray(3 * CHUNK, 3 * CHUNK + 100)));
  });

  it('serves the first read of a small kept file from disk, and of a large one once checked in the background', async () => {
    const dir = newDir();
    // Sixteen chunks at most are checked before the read that finds them.
    const files = { '/small': source(13, randomBytes(16 * CHUNK)), '/big': source(14, randomBytes(16 * CHUNK + 1)) };
    await filled(dir, 256 * CHUNK, files);
    const cache = await DiskCache.open(dir, 256 * CHUNK, { log });
    const m = mountOf(cache, files);
    const first = await m.data.readCached(20n, Buffer.from('/small'), 15 * CHUNK, 1000);
    assert.ok(first?.equals(files['/small'].bytes.subarray(15 * CHUNK, 15 * CHUNK + 1000)), 'the very first read came from disk');
    assert.equal(await m.data.readCached(21n, Buffer.from('/big'), 0, 1000), undefined, 'a large file is checked first');
    await until('the large file checked and handed over', () => m.sink.given.has(21n));
    const later = await m.data.readCached(21n, Buffer.from('/big'), 2 * CHUNK, 1000);
    assert.ok(later?.equals(files['/big'].bytes.subarray(2 * CHUNK, 2 * CHUNK + 1000)));
    // A second mount of the chain takes the checked large file at its first read.
    const n = mountOf(cache, files);
    assert.ok((await n.data.readCached(30n, Buffer.from('/big'), CHUNK, 10))?.equals(files['/big'].bytes.subarray(CHUNK, CHUNK + 10)));
    assert.deepEqual([...m.fetched, ...n.fetched], []);
  });

  it('keeps its files at close and unmount for the next agent, and removes the files of per-mount caches', async () => {
    const dir = newDir();
    const files = { '/a': source(21, randomBytes(3000)) };
    const first = await filled(dir, 64 * CHUNK, files);
    // A mount of the old shape beside it: its file is its own.
    const old = new MountData({ cache: first, mountKey: 'm1', chunkSize: CHUNK, log, mountpoint: '/mnt/o', fetchChunk: async () => files['/a'].bytes });
    const oldSink = new Sink();
    old.attach(oldSink);
    old.noteRead(3n, Buffer.from('/a'), 3000, 0, 3000);
    await until('per-mount file handed over', () => oldSink.given.has(3n));
    assert.equal(named(dir, '.data').length, 2);
    await first.close();
    assert.equal(named(dir, '.data').length, 1, 'the per-mount file went at close');
    const second = await DiskCache.open(dir, 64 * CHUNK, { log });
    const m = mountOf(second, files);
    await m.readAll(7n, '/a');
    m.data.dispose();
    assert.equal(named(dir, '.data').length, 1, 'unmounting a chain keeps its files');
    const third = await DiskCache.open(dir, 64 * CHUNK, { log });
    const again = mountOf(third, files);
    await again.readAll(8n, '/a');
    assert.deepEqual([...m.fetched, ...again.fetched], []);
  });

  it('with syncData, syncs each file before its record, and a restart reuses them all', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 12; i++) files[`/s${i}`] = source(800 + i, randomBytes(i === 0 ? 3 * CHUNK + 1 : 700 + i));
    const first = await filled(dir, 64 * CHUNK, files, true);
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log, syncData: true });
    assert.equal(cache.stats().loaded, 12);
    const m = mountOf(cache, files);
    for (let i = 0; i < 12; i++) assert.ok((await m.readAll(BigInt(i + 1), `/s${i}`)).equals(files[`/s${i}`].bytes));
    assert.deepEqual(m.fetched, []);
    await first.close();
    await cache.close();
  });

  it('appends what is waiting for its batch at close: nothing sealed is lost to a stop', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 5; i++) files[`/w${i}`] = source(850 + i, randomBytes(500 + i));
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    const m = mountOf(cache, files);
    for (let i = 0; i < 5; i++) await m.readAll(BigInt(i + 1), `/w${i}`);
    // Closed before the batch's delay is over.
    await cache.close();
    const again = await DiskCache.open(dir, 64 * CHUNK, { log });
    assert.equal(again.stats().loaded, 5);
  });

  it('reuses what an agent of the older layout left (a record file per data file), and drops its orphans', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 4; i++) files[`/o${i}`] = source(870 + i, randomBytes(i === 0 ? 2 * CHUNK + 3 : 900 + i));
    await filled(dir, 64 * CHUNK, files);
    // As the agent before the journal left it: <name>.meta beside each <name>.data, no JOURNAL, no INDEX.
    for (const [name, r] of records(dir)) await writeRecord(path.join(dir, `${name}.meta`), r);
    fs.rmSync(path.join(dir, 'JOURNAL'));
    fs.writeFileSync(path.join(dir, 'dddddddd.meta'), fs.readFileSync(path.join(dir, named(dir, '.meta')[0])));
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    assert.equal(cache.stats().loaded, 4);
    assert.equal(cache.stats().loadDropped, 1, 'the record without its data file');
    const m = mountOf(cache, files);
    for (let i = 0; i < 4; i++) assert.ok((await m.readAll(BigInt(i + 1), `/o${i}`)).equals(files[`/o${i}`].bytes));
    assert.deepEqual(m.fetched, []);
    // Evicting one of them removes its record file with it.
    await cache.close();
    const tiny = await DiskCache.open(dir, 4 * CHUNK, { log });
    assert.equal(tiny.stats().loaded, 3, 'the largest is over a quarter of the bound');
    assert.equal(named(dir, '.meta').length, 3);
    assert.equal(named(dir, '.data').length, 3);
  });

  it('shares a file between mounts of one chain, not with another chain', async () => {
    const files = { '/s': source(31, randomBytes(4000)) };
    const cache = await DiskCache.open(newDir(), 64 * CHUNK, { log });
    const a = mountOf(cache, files);
    const b = mountOf(cache, files);
    const other = mountOf(cache, files, chainIdentity([{ layerId: 7, generation: 4, createTimeMs: 1000 }]));
    await a.readAll(2n, '/s');
    await b.readAll(9n, '/s');
    await other.readAll(2n, '/s');
    assert.equal(a.fetched.length, 1);
    assert.equal(b.fetched.length, 0, 'the second mount of the chain fetched nothing');
    assert.equal(other.fetched.length, 1, 'a new generation is other bytes');
  });

  it('listens to each kept file once per node while mounted, and not at all after unmount (files outlive their mounts)', async () => {
    const files = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`/f${i}`, source(200 + i, randomBytes(100 + i))]));
    const cache = await DiskCache.open(newDir(), 64 * CHUNK, { log });
    const a = mountOf(cache, files);
    const b = mountOf(cache, files);
    let ino = 1000n;
    for (const name of Object.keys(files)) {
      await a.readAll(ino, name);
      await b.readAll(ino + 1n, name);
      // Read again: reads that still come to a mount must not add listeners.
      await a.read(ino, name, 0, 10);
      ino += 2n;
    }
    const listeners = (): number[] => Object.keys(files).map((n) => cache.peek(`${CHAIN}\0${n}`)!.gone.listeners);
    assert.deepEqual(listeners(), Object.keys(files).map(() => 2), 'one listener per mount using the file');
    a.data.dispose();
    assert.deepEqual(listeners(), Object.keys(files).map(() => 1));
    b.data.dispose();
    assert.deepEqual(listeners(), Object.keys(files).map(() => 0), 'an unmounted mount holds nothing of the cache');
  });

  it('fills a file once when two mounts of the chain read it at the same time', async () => {
    const big = source(33, randomBytes(6 * CHUNK + 5));
    const files = { '/b': big };
    const cache = await DiskCache.open(newDir(), 64 * CHUNK, { log });
    const a = mountOf(cache, files);
    const b = mountOf(cache, files);
    const [ga, gb] = await Promise.all([a.readAll(4n, '/b'), b.readAll(6n, '/b')]);
    assert.ok(ga.equals(big.bytes) && gb.equals(big.bytes));
    assert.equal(a.fetched.length + b.fetched.length, 7, 'each chunk fetched once');
    assert.equal(cache.stats().fills, 1);
  });

  it('does not reuse a file whose attributes changed: removed, fetched again, the new bytes served', async () => {
    const dir = newDir();
    const files = { '/f': source(41, randomBytes(20_000)) };
    await filled(dir, 64 * CHUNK, files);
    const changed = { '/f': source(41, randomBytes(20_000), 2) };
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    const m = mountOf(cache, changed);
    assert.ok((await m.readAll(5n, '/f')).equals(changed['/f'].bytes));
    assert.equal(m.fetched.length, 1);
    assert.equal(cache.stats().reuseRejected, 1);
    assert.equal(cache.stats().reused, 0);
    await until('the stale file removed', () => named(dir, '.data').length === 1 && keptById(dir).size === 1);
    for (const change of [{ ino: 42 }, { ctimeNsec: 6 }, { mtimeSec: 1 }] as Array<Partial<FileAttrs>>) {
      const c = await DiskCache.open(dir, 64 * CHUNK, { log });
      const n = mountOf(c, { '/f': { bytes: changed['/f'].bytes, attrs: { ...changed['/f'].attrs, ...change } } });
      await n.readAll(5n, '/f');
      assert.equal(n.fetched.length, 1, `changed ${JSON.stringify(change)}: fetched again`);
    }
  });

  it('does not reuse a truncated or grown cache file, a symlink, nor one whose bytes changed at the same size', async () => {
    const dir = newDir();
    const files = { '/t': source(51, randomBytes(3 * CHUNK)), '/c': source(52, randomBytes(3 * CHUNK)), '/g': source(53, randomBytes(1000)), '/l': source(54, randomBytes(1000)) };
    const first = await filled(dir, 64 * CHUNK, files);
    void first;
    const byId = keptById(dir);
    const fileOf = (name: string): string => byId.get(`${CHAIN}\0${name}`) as string;
    fs.truncateSync(fileOf('/t'), 2 * CHUNK);
    const fd = fs.openSync(fileOf('/c'), 'r+');
    fs.writeSync(fd, Buffer.from([0xff ^ files['/c'].bytes[CHUNK + 7]]), 0, 1, CHUNK + 7);
    fs.closeSync(fd);
    fs.appendFileSync(fileOf('/g'), 'x');
    // A symlink to a file with the right bytes: still not the cache's own file.
    const real = path.join(root, `l-${dirs}`);
    fs.renameSync(fileOf('/l'), real);
    fs.symlinkSync(real, fileOf('/l'));
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    // A start reads no data file's size (one stat per kept file): they are checked before their first reuse.
    assert.equal(cache.stats().loaded, 4);
    const m = mountOf(cache, files);
    assert.ok((await m.readAll(1n, '/t')).equals(files['/t'].bytes), 'the truncated file is never served');
    assert.equal(cache.stats().reuseRejected, 1, 'its size was checked');
    assert.ok((await m.readAll(2n, '/c')).equals(files['/c'].bytes), 'the changed byte is never served');
    assert.equal(cache.stats().reuseRejected, 2, 'the sum caught the changed byte');
    assert.ok((await m.readAll(3n, '/g')).equals(files['/g'].bytes), 'a longer file is never served');
    assert.ok((await m.readAll(4n, '/l')).equals(files['/l'].bytes));
    assert.equal(cache.stats().reuseRejected, 4, 'the grown file and the symlink were refused');
    assert.equal(m.fetched.length, 8);
  });

  it('drops corrupt, foreign-version and orphan entries at start without failing', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 5; i++) files[`/f${i}`] = source(60 + i, randomBytes(1000 + i));
    await filled(dir, 64 * CHUNK, files);
    const journal = path.join(dir, 'JOURNAL');
    const lines = fs.readFileSync(journal, 'utf8').split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 5);
    const nameOf = (line: string): string => decodeJournalLine(line)?.name as string;
    const names = lines.map(nameOf);
    const foreign = lines[1].slice(12).replace('"v":1', '"v":9');
    const damaged = [
      // Cut short, as a crash mid-write leaves it (its CRC no longer matches).
      lines[0].slice(0, lines[0].length - 9),
      // Another version, with a CRC that matches.
      `j1 ${crc32(foreign).toString(16).padStart(8, '0')} ${foreign}`,
      randomBytes(300).toString('latin1').replace(/\n/g, ' '),
      lines[3],
      lines[4],
    ];
    fs.writeFileSync(journal, damaged.join('\n') + '\n');
    // The data of a record is gone (evicted by an agent that crashed before its snapshot).
    fs.rmSync(path.join(dir, `${names[3]}.data`));
    // What a crash leaves: a data file whose fill never ended, a snapshot never renamed into place, an older agent's record without its data.
    fs.writeFileSync(path.join(dir, 'aaaa.data'), randomBytes(500));
    fs.writeFileSync(path.join(dir, 'INDEX.tmp'), '{');
    fs.writeFileSync(path.join(dir, 'cccc.meta'), '{"v":1}');
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    assert.equal(cache.stats().loaded, 1);
    // Three data files whose lines are damaged, the unfinished fill, the temporary file, the orphan record.
    assert.equal(cache.stats().loadDropped, 6);
    // The damaged journal was replaced by a snapshot of what was kept.
    await cache.flush();
    assert.deepEqual(fs.readdirSync(dir).sort(), ['FORMAT', 'INDEX', 'JOURNAL', `${names[4]}.data`].sort());
    assert.equal(fs.statSync(journal).size, 0);
    const m = mountOf(cache, files);
    for (let i = 0; i < 5; i++) assert.ok((await m.readAll(BigInt(i + 1), `/f${i}`)).equals(files[`/f${i}`].bytes));
    assert.equal(m.fetched.length, 4);
  });

  it('empties a directory of another layout with one line, and leaves another agent’s directory alone', async () => {
    const files = { '/x': source(71, randomBytes(7000)) };
    const mine = newDir();
    const neighbour = newDir();
    await filled(mine, 64 * CHUNK, files);
    await filled(neighbour, 64 * CHUNK, files);
    const before = fs.readdirSync(neighbour).sort();
    fs.writeFileSync(path.join(mine, 'FORMAT'), 'strata-data-cache 2\n');
    const l = capturingLog();
    const cache = await DiskCache.open(mine, 64 * CHUNK, { log: l.logger });
    assert.equal(cache.stats().loaded, 0);
    assert.deepEqual(fs.readdirSync(mine), ['FORMAT']);
    assert.equal(fs.readFileSync(path.join(mine, 'FORMAT'), 'utf8'), 'strata-data-cache 1\n');
    const resets = l.lines().filter((x) => x.event === 'agent.data_cache.reset');
    assert.equal(resets.length, 1);
    assert.match(String(resets[0].reason), /strata-data-cache 2/);
    // An older agent's directory: numbered files, no FORMAT.
    fs.rmSync(path.join(mine, 'FORMAT'));
    fs.writeFileSync(path.join(mine, '1'), 'x');
    fs.writeFileSync(path.join(mine, '2'), 'y');
    const l2 = capturingLog();
    await DiskCache.open(mine, 64 * CHUNK, { log: l2.logger });
    assert.deepEqual(fs.readdirSync(mine), ['FORMAT']);
    assert.equal(l2.lines().filter((x) => x.event === 'agent.data_cache.reset').length, 1);
    await cache.close();
    // A file where the directory should be.
    fs.rmSync(mine, { recursive: true });
    fs.writeFileSync(mine, 'not a directory');
    const l3 = capturingLog();
    assert.equal((await DiskCache.open(mine, 64 * CHUNK, { log: l3.logger })).stats().loaded, 0);
    assert.deepEqual(fs.readdirSync(mine), ['FORMAT']);
    assert.equal(l3.lines().filter((x) => x.event === 'agent.data_cache.reset').length, 1);
    assert.deepEqual(fs.readdirSync(neighbour).sort(), before, 'the other agent’s directory is untouched');
    const theirs = await DiskCache.open(neighbour, 64 * CHUNK, { log });
    assert.equal(theirs.stats().loaded, 1);
  });

  it('keeps the most recently used files within the size bound at start', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 6; i++) files[`/f${i}`] = source(80 + i, randomBytes(CHUNK));
    files['/big'] = source(90, randomBytes(3 * CHUNK));
    await filled(dir, 64 * CHUNK, files);
    // Last used: /f0 oldest … /f5 newest, /big newest of all.
    // The journal says when each was used (sealed): rewritten with these times.
    const t0 = Date.now() - 1_000_000;
    const usedMs = (id: string): number => (id.endsWith('/big') ? t0 + 10 : t0 + Number(id.slice(id.lastIndexOf('/f') + 2)));
    const lines = [...records(dir)].map(([name, record]) => journalLine({ name, record, usedMs: usedMs(record.id) }));
    fs.writeFileSync(path.join(dir, 'JOURNAL'), lines.join(''));
    const cache = await DiskCache.open(dir, 16 * CHUNK, { log });
    // /big is more than a quarter of 16 chunks? No: 3 ≤ 4, kept; then 4 more of a chunk each fit in 7 of the 16: all stay.
    assert.equal(cache.stats().loaded, 7);
    const small = await DiskCache.open(dir, 8 * CHUNK, { log });
    // Now /big (3 chunks) is over a quarter of 8: dropped; the 6 small ones fit 6 of 8.
    assert.equal(small.stats().loaded, 6);
    const smaller = await DiskCache.open(dir, 4 * CHUNK, { log });
    assert.equal(smaller.stats().loaded, 4);
    assert.ok(smaller.stats().bytes <= 4 * CHUNK);
    assert.equal(named(dir, '.data').length, 4);
    const m = mountOf(smaller, files);
    for (let i = 5; i >= 2; i--) await m.readAll(BigInt(i + 1), `/f${i}`);
    assert.deepEqual(m.fetched, [], 'the four most recently used were kept');
    assert.equal(smaller.stats().reused, 4);
  });

  it('fills again what was removed under it, even its whole directory', async () => {
    const dir = newDir();
    const files = { '/a': source(91, randomBytes(5000)), '/b': source(92, randomBytes(6000)) };
    await filled(dir, 64 * CHUNK, files);
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    for (const n of named(dir, '.data')) fs.rmSync(path.join(dir, n));
    const m = mountOf(cache, files);
    assert.ok((await m.readAll(1n, '/a')).equals(files['/a'].bytes));
    fs.rmSync(dir, { recursive: true });
    assert.ok((await m.readAll(2n, '/b')).equals(files['/b'].bytes));
    assert.equal(m.fetched.length, 2);
    assert.equal(fs.readFileSync(path.join(dir, 'FORMAT'), 'utf8'), 'strata-data-cache 1\n');
    // The journal went with the directory: /b's record is in a new one, and the next agent takes /b without a fetch.
    await until('the record in the new journal', () => keptById(dir).has(`${CHAIN}\0/b`));
    const next = await DiskCache.open(dir, 64 * CHUNK, { log });
    const n = mountOf(next, files);
    assert.ok((await n.readAll(3n, '/b')).equals(files['/b'].bytes));
    assert.deepEqual(n.fetched, []);
  });

  it('survives random damage to its records: never throws, never serves other bytes', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 8; i++) files[`/r${i}`] = source(200 + i, randomBytes(2000 + 97 * i));
    await filled(dir, 64 * CHUNK, files);
    const pristine = new Map(fs.readdirSync(dir).map((n) => [n, fs.readFileSync(path.join(dir, n))]));
    assert.ok(pristine.has('JOURNAL'));
    for (let round = 0; round < 40; round++) {
      for (const [n, b] of pristine) fs.writeFileSync(path.join(dir, n), b);
      for (const n of ['JOURNAL']) {
        const b = fs.readFileSync(path.join(dir, n));
        const cut = round % 3 === 0 ? b.subarray(0, Math.floor(Math.random() * b.length)) : b;
        for (let k = 0; k < 1 + (round % 4); k++) cut[Math.floor(Math.random() * cut.length)] = Math.floor(Math.random() * 256);
        fs.writeFileSync(path.join(dir, n), cut);
      }
      const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
      const m = mountOf(cache, files);
      for (let i = 0; i < 8; i++) assert.ok((await m.readAll(BigInt(i + 1), `/r${i}`)).equals(files[`/r${i}`].bytes), `round ${round} /r${i}`);
      // Records are synced before they are written: on a busy disk that takes a while.
      // (A damaged record may still parse, naming a path nobody reads: it stays, harmless, until evicted.)
      await until(`round ${round}: every file has its record again`, () => [...Array(8).keys()].every((k) => recordIds(dir).has(`${CHAIN}\0/r${k}`)), 6000);
      // A damaged journal is replaced by a snapshot in the background: done before the next round puts the damage back.
      await cache.close();
      for (const n of fs.readdirSync(dir)) if (!pristine.has(n)) fs.rmSync(path.join(dir, n));
      for (const n of pristine.keys()) if (!fs.existsSync(path.join(dir, n))) fs.writeFileSync(path.join(dir, n), pristine.get(n) as Buffer);
    }
  });
});

describe('DiskCache opened without options (agents before files were kept)', () => {
  it('is emptied at open, keeps nothing, and goes at close', async () => {
    const dir = newDir();
    const files = { '/a': source(600, randomBytes(5000)) };
    await filled(dir, 64 * CHUNK, files);
    const cache = await DiskCache.open(dir, 64 * CHUNK);
    assert.deepEqual(fs.readdirSync(dir), [], 'emptied');
    assert.equal(cache.stats().loaded, 0);
    const m = mountOf(cache, files);
    await m.readAll(1n, '/a');
    assert.equal(m.fetched.length, 1);
    await sleep(50);
    assert.deepEqual(fs.readdirSync(dir).filter((n) => !n.endsWith('.data')), [], 'no records');
    await cache.close();
    assert.equal(fs.existsSync(dir), false, 'removed at close');
  });
});

describe('DiskCache snapshot of records', () => {
  it('keeps the LRU order of the run at close, reads as well as fills', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 6; i++) files[`/f${i}`] = source(300 + i, randomBytes(CHUNK / 4));
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    const m = mountOf(cache, files);
    for (let i = 0; i < 6; i++) await m.readAll(BigInt(i + 1), `/f${i}`);
    await until('records written', () => keptById(dir).size === 6);
    // /f0 and /f1, filled first, are read last: the most recently used with /f5 and /f4.
    for (const ino of [1n, 2n]) assert.notEqual(await m.data.read(ino, Buffer.alloc(10), 0, 10), undefined);
    await cache.close();
    const lines = fs.readFileSync(path.join(dir, 'INDEX'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 7);
    // Room for four of the six.
    const small = await DiskCache.open(dir, CHUNK, { log });
    assert.equal(small.stats().loaded, 4);
    const n = mountOf(small, files);
    for (const i of [0, 1, 4, 5]) await n.readAll(BigInt(i + 1), `/f${i}`);
    assert.deepEqual(n.fetched, []);
  });

  it('a damaged or foreign snapshot costs fetches, never other bytes', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 4; i++) files[`/f${i}`] = source(400 + i, randomBytes(3000 + i));
    await (await filled(dir, 64 * CHUNK, files)).close();
    const index = path.join(dir, 'INDEX');
    assert.equal(fs.statSync(path.join(dir, 'JOURNAL')).size, 0, 'the snapshot at close holds the journal’s records');
    const lines = (t: string): string[] => t.trim().split('\n');
    // Each damage of the snapshot, and how many of the four files it leaves loadable.
    const variants: Array<[(t: string) => string, (t: string) => number]> = [
      [(t) => t.replace('strata-data-cache-index 1', 'strata-data-cache-index 7'), () => 0],
      [(t) => lines(t).slice(0, 3).join('\n') + '\n' + lines(t)[3].slice(0, 40), () => 2],
      [() => 'garbage', () => 0],
      [(t) => t.replace(/"sum":\d+/g, '"sum":12345'), () => 4],
    ];
    for (const [k, [damage, loadable]] of variants.entries()) {
      const good = fs.readFileSync(index, 'utf8');
      fs.writeFileSync(index, damage(good));
      const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
      assert.equal(cache.stats().loaded, loadable(good), `variant ${k}`);
      const m = mountOf(cache, files);
      for (let i = 0; i < 4; i++) assert.ok((await m.readAll(BigInt(i + 1), `/f${i}`)).equals(files[`/f${i}`].bytes));
      await until('records written', () => keptById(dir).size === 4);
      // The sums the snapshot misstates are caught before reuse.
      assert.equal(cache.stats().reuseRejected, k === 3 ? 4 : 0);
      assert.equal(m.fetched.length, 4 - cache.stats().reused);
      assert.equal(cache.stats().reused, k === 3 ? 0 : loadable(good));
      await cache.close();
    }
  });

  it('needs no snapshot after a crash: the journal has every sealed record, no record file is read', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 70; i++) files[`/f${i}`] = source(500 + i, randomBytes(100 + i));
    await filled(dir, 64 * CHUNK, files);
    assert.equal(fs.existsSync(path.join(dir, 'INDEX')), false, 'no snapshot yet');
    const l = capturingLog();
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log: l.logger });
    assert.equal(cache.stats().loaded, 70);
    const line = l.lines().find((x) => x.event === 'agent.data_cache.loaded');
    assert.ok(line !== undefined && line.recordsRead === 0, JSON.stringify(line));
    const m = mountOf(cache, files);
    for (let i = 0; i < 70; i++) await m.readAll(BigInt(i + 1), `/f${i}`);
    assert.deepEqual(m.fetched, []);
    assert.equal(cache.stats().reused, 70);
  });

  it('keeps the records of a journal torn by a crash but those of the torn lines, and appends after it', async () => {
    const dir = newDir();
    const files: Record<string, Source> = {};
    for (let i = 0; i < 6; i++) files[`/t${i}`] = source(700 + i, randomBytes(2000 + i));
    await filled(dir, 64 * CHUNK, files);
    const journal = path.join(dir, 'JOURNAL');
    const text = fs.readFileSync(journal, 'utf8');
    const lines = text.split('\n').filter((l) => l !== '');
    // A bit flipped in the second line, and the last cut short: as a crash mid-append leaves it.
    const flipped = lines[1].replace(/"size":(\d)/, (_m, d: string) => `"size":${(Number(d) + 1) % 10}`);
    assert.notEqual(flipped, lines[1]);
    fs.writeFileSync(journal, [lines[0], flipped, ...lines.slice(2, 5), lines[5].slice(0, lines[5].length - 20)].join('\n'));
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    assert.equal(cache.stats().loaded, 4);
    assert.equal(cache.stats().loadDropped, 2);
    const m = mountOf(cache, files);
    for (let i = 0; i < 6; i++) assert.ok((await m.readAll(BigInt(i + 1), `/t${i}`)).equals(files[`/t${i}`].bytes));
    assert.equal(m.fetched.length, 2, 'only the files of the torn lines are fetched again');
    await until('records written', () => keptById(dir).size === 6);
    // Killed again (no close): the next start has all six, from the snapshot the torn journal caused and the journal after it.
    const again = await DiskCache.open(dir, 64 * CHUNK, { log });
    assert.equal(again.stats().loaded, 6);
    const n = mountOf(again, files);
    for (let i = 0; i < 6; i++) await n.readAll(BigInt(i + 1), `/t${i}`);
    assert.deepEqual(n.fetched, []);
  });
});

/** A child agent that fills files of the chain into `dir` and reports what it did; killed with SIGKILL by the test. */
const CHILD = `
const { DiskCache } = require(${JSON.stringify(path.join(__dirname, 'disk-cache.js'))});
const { MountData } = require(${JSON.stringify(path.join(__dirname, 'mount-data.js'))});
const { createLogger } = require('@strata/telemetry');
const [dir, mode] = process.argv.slice(1);
const CHUNK = ${CHUNK};
const bytes = Buffer.alloc(4 * CHUNK, 7);
(async () => {
  const cache = await DiskCache.open(dir, 64 * CHUNK, {});
  const data = new MountData({
    cache, chainIdentity: 'k1', chunkSize: CHUNK, log: createLogger({ service: 'child', level: 'silent' }), mountpoint: '/m',
    stat: async () => ({ ino: 5, size: bytes.length, mtimeSec: 1, mtimeNsec: 2, ctimeSec: 3, ctimeNsec: 4 }),
    fetchChunk: async (_p, i) => {
      if (mode === 'partial' && i >= 2) { process.stdout.write('partial\\n'); return new Promise(() => {}); }
      return bytes.subarray(i * CHUNK, (i + 1) * CHUNK);
    },
  });
  data.attach({ setFileData: () => { process.stdout.write('filled\\n'); return 'pread'; }, clearFileData: () => {} });
  data.noteRead(2n, Buffer.from('/k'), bytes.length, 0, CHUNK);
  data.noteRead(2n, Buffer.from('/k'), bytes.length, CHUNK, CHUNK);
  setInterval(() => {
    const j = require('path').join(dir, 'JOURNAL');
    if (require('fs').existsSync(j) && require('fs').statSync(j).size > 0) process.stdout.write('sealed\\n');
  }, 5);
})();
`;

/** Runs the child until it prints `word`, then kills it; bounded. */
async function killedAfter(dir: string, mode: string, word: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', CHILD, dir, mode], { stdio: ['ignore', 'pipe', 'inherit'], cwd: __dirname });
  let out = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child never said ${word}: ${out}`)), 20_000);
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes(word)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', () => {
        clearTimeout(timer);
        reject(new Error(`child exited: ${out}`));
      });
    });
  } finally {
    child.kill('SIGKILL');
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  }
}

describe('DiskCache after a killed agent', () => {
  it('takes a file the killed agent had sealed, without fetching it', async () => {
    const dir = newDir();
    await killedAfter(dir, 'whole', 'sealed');
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    assert.equal(cache.stats().loaded, 1);
    const files = { '/k': { bytes: Buffer.alloc(4 * CHUNK, 7), attrs: { ino: 5, size: 4 * CHUNK, mtimeSec: 1, mtimeNsec: 2, ctimeSec: 3, ctimeNsec: 4 } } };
    const m = mountOf(cache, files, 'k1');
    assert.ok((await m.readAll(9n, '/k')).equals(files['/k'].bytes));
    assert.deepEqual(m.fetched, []);
  });

  it('never takes a fill the killed agent left half done', async () => {
    const dir = newDir();
    await killedAfter(dir, 'partial', 'partial');
    assert.equal(named(dir, '.data').length, 1, 'the half-written file is there');
    const cache = await DiskCache.open(dir, 64 * CHUNK, { log });
    assert.equal(cache.stats().loaded, 0);
    assert.equal(cache.stats().loadDropped, 1);
    assert.deepEqual(fs.readdirSync(dir), ['FORMAT']);
  });
});

describe('DiskCache start cost', () => {
  it('loads 10,000 kept files in bounded time', async (t) => {
    const dir = newDir();
    const first = await DiskCache.open(dir, 1 << 30, { log });
    await first.close();
    // Written directly (the fill's fsyncs would make this setup take minutes): what 10,000 sealed fills leave.
    const body = Buffer.alloc(4096, 1);
    for (let i = 0; i < 10_000; i++) {
      const name = i.toString(16).padStart(24, '0');
      fs.writeFileSync(path.join(dir, `${name}.data`), body);
      const rec = { v: 1, id: `${CHAIN}\0/usr/lib/file-${i}.so`, size: body.length, attrs: { ino: i + 1, size: body.length, mtimeSec: 1, mtimeNsec: 2, ctimeSec: 3, ctimeNsec: 4 }, chunkSize: CHUNK, sum: 0 };
      fs.writeFileSync(path.join(dir, `${name}.meta`), JSON.stringify(rec));
    }
    let started = performance.now();
    const afterCrash = await DiskCache.open(dir, 1 << 30, { log });
    const crashMs = performance.now() - started;
    assert.equal(afterCrash.stats().loaded, 10_000);
    started = performance.now();
    await afterCrash.close();
    const closeMs = performance.now() - started;
    assert.ok(fs.existsSync(path.join(dir, 'INDEX')));
    started = performance.now();
    const cache = await DiskCache.open(dir, 1 << 30, { log });
    const ms = performance.now() - started;
    t.diagnostic(`10,000 kept files: open without a snapshot (after a crash) ${crashMs.toFixed(0)} ms, close (snapshot) ${closeMs.toFixed(0)} ms, open with it ${ms.toFixed(0)} ms`);
    assert.equal(cache.stats().loaded, 10_000);
    assert.ok(crashMs < 30_000 && ms < 10_000, `${crashMs} ms, ${ms} ms`);
  });
});
