/** A small least-recently-used map bounded by a total cost (bytes, or entries with cost 1). */
export class Lru<K, V> {
  private readonly map = new Map<K, { value: V; cost: number }>();
  private total = 0;

  constructor(private readonly capacity: number) {}

  get(key: K): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    this.map.delete(key);
    this.map.set(key, hit);
    return hit.value;
  }

  set(key: K, value: V, cost = 1): void {
    const old = this.map.get(key);
    if (old) {
      this.total -= old.cost;
      this.map.delete(key);
    }
    this.map.set(key, { value, cost });
    this.total += cost;
    for (const [k, v] of this.map) {
      if (this.total <= this.capacity || this.map.size <= 1) break;
      this.map.delete(k);
      this.total -= v.cost;
    }
  }
}
