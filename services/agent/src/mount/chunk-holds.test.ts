import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answerBuffer, freeAnswerBytes, heldAnswers, recycleAnswer } from '@strata/client';
import { CHUNK_SIZE, ChunkCache } from './chunk-cache';
import { holdForTurn } from './chunk-holds';

test('a chunk held for the turn is reused only after this turn\'s callbacks, when its owner gave it back', async () => {
  const free0 = freeAnswerBytes();
  const a = answerBuffer(CHUNK_SIZE);
  holdForTurn(a.subarray(10, 20));
  holdForTurn(a);
  recycleAnswer(a);
  await Promise.resolve();
  assert.equal(freeAnswerBytes(), free0, 'promise callbacks of this turn still see its bytes');
  await new Promise((r) => setImmediate(r));
  assert.equal(freeAnswerBytes(), free0 + CHUNK_SIZE);
  assert.equal(heldAnswers(), 0);
  assert.equal(answerBuffer(CHUNK_SIZE), a);
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
