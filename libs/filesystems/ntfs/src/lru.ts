/** A least-recently-used map bounded by the summed cost of its values. */
export class Lru<K, V> {
  private readonly map = new Map<K, { value: V; cost: number }>();
  private total = 0;

  constructor(private readonly budget: number) {}

  get(key: K): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    this.map.delete(key);
    this.map.set(key, hit);
    return hit.value;
  }

  delete(key: K): void {
    const old = this.map.get(key);
    if (!old) return;
    this.total -= old.cost;
    this.map.delete(key);
  }

  set(key: K, value: V, cost: number): void {
    const old = this.map.get(key);
    if (old) {
      this.total -= old.cost;
      this.map.delete(key);
    }
    if (cost > this.budget) return;
    this.map.set(key, { value, cost });
    this.total += cost;
    for (const [k, v] of this.map) {
      if (this.total <= this.budget) break;
      this.map.delete(k);
      this.total -= v.cost;
    }
  }
}
