import { holdAnswer } from '@strata/client';

/*
 * A chunk's buffer is read into again for a later answer once the chunk
 * cache evicts it (@strata/client answer-buffers: evicting gives it back,
 * holding it defers that). A READ answered from a chunk holds it for the
 * turn it is written to the kernel in.
 */

/** Turn-long holds: released together once the callbacks of this turn (and their promise chains) are done. */
let turn: Array<() => void> | undefined;

/**
 * Holds `b` until the check phase of this turn: a READ answered from a
 * chunk is written to the kernel within the promise chain that produced
 * it, before any later socket read could reuse the buffer.
 */
export function holdForTurn(b: Buffer): void {
  const release = holdAnswer(b);
  if (!turn) {
    const releases: Array<() => void> = [];
    turn = releases;
    setImmediate(() => {
      turn = undefined;
      for (const r of releases) r();
    });
  }
  turn.push(release);
}
