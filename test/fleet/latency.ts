/** What a fleet report shows of a set of latencies (milliseconds). */
export interface LatencySummary {
  count: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

/** The q-quantile of ascending `sorted` (nearest rank), null when empty. */
export function quantile(sorted: Float64Array, q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function summarise(ms: number[]): LatencySummary {
  const sorted = Float64Array.from(ms).sort();
  const r = (v: number | null): number | null => (v === null ? null : Math.round(v * 1000) / 1000);
  return { count: sorted.length, p50Ms: r(quantile(sorted, 0.5)), p99Ms: r(quantile(sorted, 0.99)), maxMs: r(quantile(sorted, 1)) };
}
