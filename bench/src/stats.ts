/** Latency samples in nanoseconds and what a benchmark table shows of them. */
export class Samples {
  private readonly ns: number[] = [];

  add(ns: number): void {
    this.ns.push(ns);
  }

  get count(): number {
    return this.ns.length;
  }

  /** The q-quantile (0..1) in milliseconds. */
  quantileMs(q: number): number {
    if (this.ns.length === 0) return NaN;
    const sorted = Float64Array.from(this.ns).sort();
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1e6;
  }
}

export function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}
