import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Ask } from '@strata/client';
import type { ReadRequest } from '@strata/protocol';
import { CHUNK_SIZE, ChunkCache } from './chunk-cache';
import { FileData, type FileRef } from './file-data';

/** A resolver's reads of `files`, recording what was asked. */
function resolver(files: Map<string, Buffer>): { ask: Ask; asked: ReadRequest[] } {
  const asked: ReadRequest[] = [];
  const ask = (async (op: string, req: ReadRequest) => {
    assert.equal(op, 'read');
    asked.push(req);
    await new Promise((r) => setImmediate(r));
    const bytes = files.get(req.path.toString())!;
    const data = bytes.subarray(req.offset, Math.min(bytes.length, req.offset + req.length));
    return { offset: req.offset, data: Buffer.from(data), eof: req.offset + data.length >= bytes.length };
  }) as unknown as Ask;
  return { ask, asked };
}

const layer = { ref: { $case: 'name' as const, name: 'l' } };

function setup(files: Map<string, Buffer>, ttlMs?: number): { data: FileData; chunks: ChunkCache; asked: ReadRequest[]; tapped: Array<{ key: string; index: number; length: number }> } {
  const r = resolver(files);
  const chunks = new ChunkCache(64 << 20);
  const data = new FileData({ ask: r.ask, layer, chunks, mountKey: 'm', ...(ttlMs !== undefined ? { ttlMs } : {}) });
  const tapped: Array<{ key: string; index: number; length: number }> = [];
  data.tapChunks((key, index, bytes) => tapped.push({ key, index, length: bytes.length }));
  return { data, chunks, asked: r.asked, tapped };
}

const ref = (p: string, size?: number): FileRef => ({ key: p, path: Buffer.from(p), ...(size !== undefined ? { size } : {}) });

test('a sealed file of known size is asked for up to its end; the chunk is the same, and the data cache is told of it', async () => {
  const small = randomBytes(5000);
  const big = randomBytes(CHUNK_SIZE + 300);
  const { data, asked, tapped } = setup(
    new Map([
      ['/small', small],
      ['/big', big],
    ]),
  );
  const v = await data.view(ref('/small', small.length), 0, small.length, 'chunk');
  assert.ok(v.equals(small));
  assert.equal(asked[0].length, small.length, 'asked for the file, not a whole chunk');
  // Its last chunk, by a jump into a block of it and by a sequential reader.
  data.prefetchChunk(ref('/big', big.length), 1);
  const tail = await data.view(ref('/big', big.length), CHUNK_SIZE, CHUNK_SIZE + 300, 'chunk');
  assert.ok(tail.equals(big.subarray(CHUNK_SIZE)));
  assert.equal(asked[1].offset, CHUNK_SIZE);
  assert.equal(asked[1].length, 300);
  const head = await data.view(ref('/big', big.length), 10, 20, 'chunk');
  assert.ok(head.equals(big.subarray(10, 20)));
  assert.equal(asked[2].length, CHUNK_SIZE, 'a chunk within the file: whole');
  assert.deepEqual(
    tapped.map((t) => `${t.key} ${t.index} ${t.length}`),
    ['/small 0 5000', '/big 1 300', `/big 0 ${CHUNK_SIZE}`],
  );
  // Unknown size (or a LIVE layer): a whole chunk is asked for, as before.
  const live = setup(new Map([['/small', small]]), 1000);
  await live.data.view(ref('/small', small.length), 0, small.length, 'chunk');
  assert.equal(live.asked[0].length, CHUNK_SIZE);
  const unknown = setup(new Map([['/small', small]]));
  await unknown.data.view(ref('/small'), 0, small.length, 'chunk');
  assert.equal(unknown.asked[0].length, CHUNK_SIZE);
  assert.equal(unknown.tapped.length, 1);
});

test('pages at the start of a tiny file are the whole file: the data cache is told of it as its chunk', async () => {
  const tiny = randomBytes(700);
  const { data, asked, tapped } = setup(new Map([['/t', tiny]]));
  assert.ok((await data.view(ref('/t', 700), 0, 700, 'pages')).equals(tiny));
  assert.equal(asked[0].length, 700);
  assert.deepEqual(tapped, [{ key: '/t', index: 0, length: 700 }]);
});

test("the data cache's fill takes a one-chunk file out of the chunk cache; larger files' chunks stay", async () => {
  const small = randomBytes(5000);
  const big = randomBytes(CHUNK_SIZE + 10);
  const { data, chunks, asked } = setup(
    new Map([
      ['/small', small],
      ['/big', big],
    ]),
  );
  assert.ok((await data.view(ref('/small', small.length), 0, 100, 'chunk')).equals(small.subarray(0, 100)));
  const before = chunks.usage.bytes;
  assert.ok((await data.chunk(ref('/small'), 0)).equals(small), 'the fill gets the bytes the reader fetched');
  assert.equal(asked.length, 1, 'not fetched again');
  assert.equal(chunks.usage.bytes, before - small.length, 'then they leave the chunk cache');
  // A read after that (a file opened before the fill) fetches it again.
  assert.ok((await data.view(ref('/small', small.length), 0, 100, 'chunk')).equals(small.subarray(0, 100)));
  assert.equal(asked.length, 2);
  for (const i of [0, 1]) assert.equal((await data.chunk(ref('/big'), i)).length, i === 0 ? CHUNK_SIZE : 10);
  assert.equal(asked.length, 4);
  await data.view(ref('/big'), 0, 10, 'chunk');
  await data.view(ref('/big'), CHUNK_SIZE, CHUNK_SIZE + 10, 'chunk');
  assert.equal(asked.length, 4, "a larger file's chunks stay for its readers");
});
