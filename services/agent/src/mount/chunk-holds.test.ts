import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answerBuffer, freeAnswerBytes } from '@strata/client';
import { CHUNK_SIZE, ChunkCache } from './chunk-cache';
import { evicted, heldChunks, holdChunk, holdForTurn } from './chunk-holds';

test('an evicted chunk is reused only once nobody holds it', async () => {
  const free0 = freeAnswerBytes();
  const a = answerBuffer(CHUNK_SIZE);
  const release = holdChunk(a);
  const again = holdChunk(a);
  evicted(a);
  assert.equal(freeAnswerBytes(), free0, 'held: not reused');
  release();
  release();
  assert.equal(freeAnswerBytes(), free0, 'one release per hold, a second call does nothing');
  again();
  assert.equal(freeAnswerBytes(), free0 + CHUNK_SIZE, 'the last release gives it back');
  assert.equal(answerBuffer(CHUNK_SIZE), a);
  // Held for the turn: given back after this turn's callbacks.
  holdForTurn(a);
  evicted(a);
  await Promise.resolve();
  assert.equal(freeAnswerBytes(), free0);
  await new Promise((r) => setImmediate(r));
  assert.equal(freeAnswerBytes(), free0 + CHUNK_SIZE);
  assert.equal(heldChunks(), 0);
  // Small buffers are never reused: nothing is held.
  holdChunk(Buffer.alloc(10));
  assert.equal(heldChunks(), 0);
});

test('the chunk cache gives back what it evicts, not what a caller deletes', async () => {
  const cache = new ChunkCache(2 * CHUNK_SIZE);
  const bufs = [0, 1, 2].map(() => answerBuffer(CHUNK_SIZE));
  const free0 = freeAnswerBytes();
  for (const [i, b] of bufs.entries()) await cache.get(`k${i}`, async () => b);
  assert.equal(freeAnswerBytes(), free0 + CHUNK_SIZE, 'the least recent one, evicted');
  assert.equal(answerBuffer(CHUNK_SIZE), bufs[0]);
  cache.delete('k1');
  assert.equal(freeAnswerBytes(), free0, 'deleted (the data cache is writing it): left to the collector');
});
