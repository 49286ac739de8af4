/** How often visibleWithin looks: a short interval keeps the measurement close to the moment a change shows. */
export const POLL_MS = 10;

/**
 * Polls every condition until each has held once (or timeoutMs passes) and
 * returns, per condition, the ms from the call until it first held
 * (Infinity if it never did). The caller asserts the times against its
 * budget, so a slow change fails with how slow it was.
 */
export async function visibleWithin<K extends string>(conditions: Record<K, () => boolean>, timeoutMs: number): Promise<Record<K, number>> {
  const t0 = Date.now();
  const names = Object.keys(conditions) as K[];
  const seen = Object.fromEntries(names.map((n) => [n, Infinity])) as Record<K, number>;
  for (;;) {
    for (const n of names) {
      if (seen[n] === Infinity && conditions[n]()) seen[n] = Date.now() - t0;
    }
    if (names.every((n) => seen[n] !== Infinity) || Date.now() - t0 > timeoutMs) return seen;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
