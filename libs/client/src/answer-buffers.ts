/**
 * The buffers data stream answers are read into (data-lane.ts). A large one
 * may be given back by its owner (the agent's chunk cache, when it evicts a
 * chunk) and is then read into again: a fresh 1 MiB buffer per chunk cost
 * the agent more in garbage collection than the copies of its bytes (V8
 * starts a full collection of the whole heap for every 64 MiB of outside
 * memory allocated). Nothing is given back unless a caller does so:
 * without that this is plain allocation.
 *
 * Whoever uses a buffer past the turn its owner may give it back in (a
 * write of it on the threadpool, a READ answered from it) holds it: a
 * buffer given back while held is read into again at its last release.
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
/** Buffers held now: how many holds, and the buffer if its owner gave it back meanwhile. */
const holds = new Map<ArrayBufferLike, { count: number; givenBack?: Buffer }>();
const NOTHING = (): void => undefined;

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

/** Kept for a later answer of its length, within MAX_FREE_ANSWER_BYTES. */
function keep(b: Buffer): boolean {
  if (freeBytes + b.length > MAX_FREE_ANSWER_BYTES) return false;
  let list = free.get(b.length);
  if (!list) free.set(b.length, (list = []));
  list.push(b);
  freeNow.add(b.buffer);
  freeBytes += b.length;
  return true;
}

/**
 * `b`, an answer's buffer whole, is given up by its owner: a later answer
 * of its length is read into it, at once or, while it is held, at its last
 * release. Anything else (a part of one, a buffer made elsewhere, one given
 * back already) is ignored; false then, or when enough are kept.
 */
export function recycleAnswer(b: Buffer): boolean {
  const ab = b.buffer;
  if (b.length < POOLED_ANSWER_BYTES || b.byteOffset !== 0 || ab.byteLength !== b.length || !made.has(ab) || freeNow.has(ab)) return false;
  const h = holds.get(ab);
  if (h) {
    if (h.givenBack) return false;
    h.givenBack = b;
    return true;
  }
  return keep(b);
}

/**
 * Holds `b`'s buffer (or any part of it) until the returned release is
 * called (once; more calls do nothing): given back meanwhile, it is not
 * read into before then. A buffer not made here needs no hold.
 */
export function holdAnswer(b: Uint8Array): () => void {
  const ab = b.buffer;
  if (!made.has(ab)) return NOTHING;
  const h = holds.get(ab);
  if (h) h.count++;
  else holds.set(ab, { count: 1 });
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const now = holds.get(ab);
    if (!now || --now.count > 0) return;
    holds.delete(ab);
    if (now.givenBack) keep(now.givenBack);
  };
}

/** Bytes kept for reuse now (tests). */
export function freeAnswerBytes(): number {
  return freeBytes;
}

/** Buffers held now (tests). */
export function heldAnswers(): number {
  return holds.size;
}
