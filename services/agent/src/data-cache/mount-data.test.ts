import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StrataError } from '@strata/errors';
import { createLogger } from '@strata/telemetry';
import { DiskCache } from './disk-cache';
import { MountData, READER_PAUSE_MS, type FileDataSink } from './mount-data';

const CHUNK = 64 * 1024;
const log = createLogger({ service: 'test', level: 'silent' });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-mount-data-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A sink that records what was handed over, reading the fd's bytes at once (the caller closes it after). */
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

/** The cache files in `dir` (beside them: the layout's FORMAT file, records of kept files). */
function dataFiles(dir: string): number {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.data')).length;
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !ok(); i++) await sleep(5);
  assert.ok(ok(), what);
}

/** What the fetch of a chunk returns instead of its bytes `b` (a corrupt chunk, a wait, an outage). */
type Source = (name: string, index: number, b: Buffer) => Buffer | Promise<Buffer>;

async function setup(maxBytes: number, files: Record<string, Buffer>, source?: Source, fillLeadBytes?: number) {
  const cache = await DiskCache.open(path.join(root, `c${Math.random()}`), maxBytes);
  const fetched: string[] = [];
  const data = new MountData({
    cache,
    mountKey: 'm1',
    chunkSize: CHUNK,
    log,
    mountpoint: '/mnt/x',
    ...(fillLeadBytes !== undefined ? { fillLeadBytes } : {}),
    fetchChunk: async (p, i) => {
      const name = p.toString();
      fetched.push(`${name}#${i}`);
      const b = files[name].subarray(i * CHUNK, (i + 1) * CHUNK);
      return source ? source(name, i, b) : b;
    },
  });
  const sink = new Sink();
  data.attach(sink);
  // As the kernel handler does: from disk if cached, else fetched elsewhere and the fill told.
  const read = async (ino: bigint, name: string, pos: number, len: number): Promise<number | undefined> => {
    const n = await data.read(ino, Buffer.alloc(len), pos, len);
    if (n === undefined) data.noteRead(ino, Buffer.from(name), files[name].length, pos, len);
    return n;
  };
  return { cache, data, sink, fetched, read };
}

describe('MountData', () => {
  it('keeps a small file whole after its first read and hands exactly its bytes to the session', async () => {
    const small = randomBytes(10_000);
    const { sink, read, cache } = await setup(1 << 20, { '/s': small });
    assert.equal(await read(2n, '/s', 0, 4096), undefined, 'the first read is the caller’s to fetch');
    await until('handed over', () => sink.given.has(2n));
    assert.ok(sink.given.get(2n)?.equals(small));
    assert.equal(cache.stats().fills, 1);
  });

  it('serves reads that still reach it from disk once cached, without fetching again', async () => {
    const small = randomBytes(20_000);
    const { data, sink, read, fetched, cache } = await setup(1 << 20, { '/s': small });
    await read(3n, '/s', 0, 4096);
    await until('handed over', () => sink.given.has(3n));
    const before = fetched.length;
    const into = Buffer.alloc(1000);
    assert.equal(await data.read(3n, into, 19_500, 1000), 500, 'short at the end of the file');
    assert.ok(into.subarray(0, 500).equals(small.subarray(19_500)));
    assert.equal(await data.read(3n, into, 30_000, 1000), 0, 'nothing past it');
    assert.equal(fetched.length, before);
    assert.equal(cache.stats().diskReads, 2);
  });

  it('fills a large file read in order, not one read at random', async () => {
    const big = randomBytes(5 * CHUNK + 17);
    const { sink, read, fetched } = await setup(64 * CHUNK, { '/big': big, '/rand': big });
    await read(4n, '/rand', 3 * CHUNK, 4096);
    await read(4n, '/rand', CHUNK, 4096);
    await read(4n, '/rand', 4 * CHUNK, 4096);
    await sleep(50);
    assert.equal(sink.given.has(4n), false);
    assert.equal(fetched.length, 0);
    await read(5n, '/big', 0, CHUNK);
    await read(5n, '/big', CHUNK, CHUNK);
    await until('the whole file handed over', () => sink.given.has(5n));
    assert.ok(sink.given.get(5n)?.equals(big));
  });

  it("runs a fill no further ahead of its file's reader than its lead; a reader that pauses lets it finish", async () => {
    const big = randomBytes(20 * CHUNK);
    const { data, sink, fetched } = await setup(128 * CHUNK, { '/big': big }, undefined, 2 * CHUNK);
    data.noteRead(6n, Buffer.from('/big'), big.length, 0, CHUNK);
    data.noteRead(6n, Buffer.from('/big'), big.length, CHUNK, CHUNK);
    await until('the fill took the chunks within its lead', () => fetched.length === 4);
    await sleep(READER_PAUSE_MS / 5);
    assert.deepEqual(fetched, ['/big#0', '/big#1', '/big#2', '/big#3'], 'up to the reader (2 chunks) and its lead (2 more)');
    // The reader moves on: so does the fill, as far again.
    data.noteRead(6n, Buffer.from('/big'), big.length, 2 * CHUNK, CHUNK);
    await until('one chunk further', () => fetched.length === 5);
    await sleep(READER_PAUSE_MS / 5);
    assert.equal(fetched.length, 5);
    assert.equal(sink.given.has(6n), false);
    // Then it stops reading: after a pause the fill goes on alone, to the end.
    await until('handed over', () => sink.given.has(6n));
    assert.ok(sink.given.get(6n)?.equals(big));
    assert.equal(new Set(fetched).size, 20, 'each chunk fetched once');
  });

  it('writes the chunks readers fetched into a fill instead of fetching them again', async () => {
    const big = randomBytes(10 * CHUNK - 5);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const { data, sink, fetched } = await setup(64 * CHUNK, { '/big': big }, async (_name, _i, b) => {
      await gate;
      return b;
    });
    data.noteRead(9n, Buffer.from('/big'), big.length, 0, CHUNK);
    data.noteRead(9n, Buffer.from('/big'), big.length, CHUNK, CHUNK);
    await until('the fill took its first chunks', () => fetched.length === 4);
    // A reader ahead of the fill fetched the rest meanwhile.
    for (let i = 4; i < 10; i++) data.chunkFetched('/big', i, big.subarray(i * CHUNK, (i + 1) * CHUNK));
    open();
    await until('handed over', () => sink.given.has(9n));
    assert.ok(sink.given.get(9n)?.equals(big));
    assert.deepEqual(fetched, ['/big#0', '/big#1', '/big#2', '/big#3']);
  });

  it('evicts by size and tells the session a file is gone', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 6; i++) files[`/f${i}`] = randomBytes(CHUNK);
    const { sink, read, cache } = await setup(4 * CHUNK, files);
    for (let i = 0; i < 6; i++) {
      await read(BigInt(10 + i), `/f${i}`, 0, 100);
      await until(`f${i} handed over`, () => sink.given.has(BigInt(10 + i)));
    }
    assert.ok(cache.stats().bytes <= 4 * CHUNK);
    assert.deepEqual(sink.cleared, [10n, 11n]);
    await until('evicted files removed', () => dataFiles(cache.dir) === 4);
  });

  it('does not hand over a file whose chunks do not add up, nor try it again', async () => {
    const f = randomBytes(3 * CHUNK);
    const { sink, read, fetched, cache } = await setup(64 * CHUNK, { '/f': f }, (_n, i, b) => (i === 1 ? b.subarray(0, 10) : b));
    await read(7n, '/f', 0, CHUNK);
    await read(7n, '/f', CHUNK, CHUNK);
    await until('fill failed', () => cache.stats().fillFailures === 1);
    assert.equal(sink.given.has(7n), false);
    const n = fetched.length;
    await read(7n, '/f', 2 * CHUNK, CHUNK);
    await sleep(20);
    assert.equal(fetched.length, n, 'no second fill');
    await until('its room given back', () => dataFiles(cache.dir) === 0);
  });

  it('retries a file whose fill failed for want of a resolver', async () => {
    const f = randomBytes(100);
    let down = true;
    const { data, sink, read, cache } = await setup(1 << 20, { '/f': f }, (_name, _i, b) => {
      if (down) throw StrataError.unavailable('no resolver');
      return b;
    });
    await read(8n, '/f', 0, 100);
    await until('failed', () => cache.stats().fillFailures === 1);
    down = false;
    await read(8n, '/f', 0, 100);
    await until('handed over', () => sink.given.has(8n));
    data.dispose();
    await until('dispose removes the mount’s files', () => dataFiles(cache.dir) === 0);
  });
});
