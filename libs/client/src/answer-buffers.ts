/**
 * The buffers data stream answers are read into (data-lane.ts). A large one
 * may be given back by whoever holds it last (the agent's chunk cache, when
 * it evicts a chunk nobody else uses) and is then read into again: a fresh
 * 1 MiB buffer per chunk cost the agent more in garbage collection than
 * the copies of its bytes (V8 starts a full collection of the whole heap
 * for every 64 MiB of outside memory allocated). Nothing is given back
 * unless a caller does so: without that this is plain allocation.
 */

/** Answers at least this long get a buffer of their own that may be reused. */
export const POOLED_ANSWER_BYTES = 256 << 10;
/** Bytes of given-back buffers kept for reuse; beyond it they are left to the collector. */
export const MAX_FREE_ANSWER_BYTES = 32 << 20;

/** Buffers made here (only those may come back), and those free now (given back twice is refused). */
const made = new WeakSet<ArrayBufferLike>();
const freeNow = new WeakSet<ArrayBufferLike>();
const free = new Map<number, Buffer[]>();
let freeBytes = 0;

/** A buffer for an answer of `length` bytes: a given-back one of that length if there is one. */
export function answerBuffer(length: number): Buffer {
  if (length < POOLED_ANSWER_BYTES) return Buffer.allocUnsafe(length);
  const reused = free.get(length)?.pop();
  if (reused) {
    freeNow.delete(reused.buffer);
    freeBytes -= length;
    return reused;
  }
  const b = Buffer.allocUnsafeSlow(length);
  made.add(b.buffer);
  return b;
}

/**
 * `b`, an answer's buffer whole, is no longer referred to by anyone: a
 * later answer of its length is read into it. Anything else (a part of
 * one, a buffer made elsewhere, one given back already) is ignored; false
 * then, or when enough are kept.
 */
export function recycleAnswer(b: Buffer): boolean {
  const ab = b.buffer;
  if (b.length < POOLED_ANSWER_BYTES || b.byteOffset !== 0 || ab.byteLength !== b.length || !made.has(ab) || freeNow.has(ab)) return false;
  if (freeBytes + b.length > MAX_FREE_ANSWER_BYTES) return false;
  let list = free.get(b.length);
  if (!list) free.set(b.length, (list = []));
  list.push(b);
  freeNow.add(ab);
  freeBytes += b.length;
  return true;
}

/** Bytes kept for reuse now (tests). */
export function freeAnswerBytes(): number {
  return freeBytes;
}
