import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_FREE_ANSWER_BYTES, POOLED_ANSWER_BYTES, answerBuffer, freeAnswerBytes, heldAnswers, holdAnswer, recycleAnswer } from './answer-buffers';

test('a large answer buffer given back is read into again; small ones, parts, foreign buffers and second returns are refused', () => {
  const n = 1 << 20;
  const a = answerBuffer(n);
  assert.equal(a.length, n);
  assert.equal(a.buffer.byteLength, n, 'a buffer of its own');
  assert.equal(recycleAnswer(a.subarray(0, n - 1)), false, 'a part');
  assert.equal(recycleAnswer(Buffer.allocUnsafeSlow(n)), false, 'not made here');
  assert.equal(recycleAnswer(answerBuffer(POOLED_ANSWER_BYTES - 1)), false, 'small answers are plain allocations');
  assert.equal(recycleAnswer(a), true);
  assert.equal(recycleAnswer(a), false, 'given back twice would hand one buffer to two answers');
  assert.equal(freeAnswerBytes(), n);
  assert.notEqual(answerBuffer(n - 4096).buffer, a.buffer, 'only for an answer of its length');
  assert.equal(answerBuffer(n).buffer, a.buffer);
  assert.equal(freeAnswerBytes(), 0);
  assert.equal(recycleAnswer(a), true, 'in use again, so it may come back again');
  assert.equal(answerBuffer(n), a);
});

test('a buffer given back while held is read into again only at its last release', () => {
  const n = 1 << 20;
  const free0 = freeAnswerBytes();
  const a = answerBuffer(n);
  const release = holdAnswer(a);
  const again = holdAnswer(a.subarray(100, 200));
  assert.equal(recycleAnswer(a), true, 'taken: reused once released');
  assert.equal(recycleAnswer(a), false, 'given back twice while held');
  assert.equal(freeAnswerBytes(), free0, 'held: not reused');
  assert.notEqual(answerBuffer(n).buffer, a.buffer);
  release();
  release();
  assert.equal(freeAnswerBytes(), free0, 'one release per hold, a second call does nothing');
  again();
  assert.equal(freeAnswerBytes(), free0 + n, 'the last release gives it back');
  assert.equal(heldAnswers(), 0);
  assert.equal(answerBuffer(n), a);
  // Held and released without being given back: nothing kept.
  holdAnswer(a)();
  assert.equal(freeAnswerBytes(), free0);
  // Buffers not made here need no hold.
  holdAnswer(Buffer.allocUnsafeSlow(n));
  holdAnswer(answerBuffer(10));
  assert.equal(heldAnswers(), 0);
});

test('what is kept for reuse is bounded', () => {
  const n = 4 << 20;
  const bufs = Array.from({ length: MAX_FREE_ANSWER_BYTES / n + 2 }, () => answerBuffer(n));
  const kept = bufs.map((b) => recycleAnswer(b)).filter(Boolean).length;
  assert.equal(kept, MAX_FREE_ANSWER_BYTES / n);
  assert.ok(freeAnswerBytes() <= MAX_FREE_ANSWER_BYTES);
});
