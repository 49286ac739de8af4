import { POOLED_ANSWER_BYTES, recycleAnswer } from '@strata/client';

/*
 * Who still uses a chunk the chunk cache let go of. A chunk's buffer is
 * read into again for a later answer once the cache evicts it
 * (@strata/client's answer-buffers), so anyone using one past the current
 * turn of the event loop holds it: the data cache's fill while its write of
 * the chunk is on the threadpool, a READ's answer until it is written to
 * the kernel. A chunk evicted while held is reused at its last release.
 */

const holds = new Map<ArrayBufferLike, { count: number; evicted?: Buffer }>();
const NOTHING = (): void => undefined;

/** Holds `b`'s buffer until the returned release is called (once; more calls do nothing). */
export function holdChunk(b: Buffer): () => void {
  const ab = b.buffer;
  // Smaller buffers are never reused: nothing to hold.
  if (ab.byteLength < POOLED_ANSWER_BYTES) return NOTHING;
  const h = holds.get(ab);
  if (h) h.count++;
  else holds.set(ab, { count: 1 });
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const now = holds.get(ab);
    if (!now) return;
    if (--now.count > 0) return;
    holds.delete(ab);
    if (now.evicted) recycleAnswer(now.evicted);
  };
}

/** Turn-long holds: released together once the callbacks of this turn (and their promise chains) are done. */
let turn: Array<() => void> | undefined;

/**
 * Holds `b` until the check phase of this turn: a READ answered from a
 * chunk is written to the kernel within the promise chain that produced
 * it, before any later socket read could reuse the buffer.
 */
export function holdForTurn(b: Buffer): void {
  if (b.buffer.byteLength < POOLED_ANSWER_BYTES) return;
  if (!turn) {
    const releases: Array<() => void> = [];
    turn = releases;
    setImmediate(() => {
      turn = undefined;
      for (const release of releases) release();
    });
  }
  turn.push(holdChunk(b));
}

/** The chunk cache evicted `b`: reused now if nobody holds it, else at its last release. */
export function evicted(b: Buffer): void {
  const h = holds.get(b.buffer);
  if (h) h.evicted = b;
  else recycleAnswer(b);
}

/** Buffers held now (tests). */
export function heldChunks(): number {
  return holds.size;
}
