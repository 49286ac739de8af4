/**
 * The volume's $UpCase table: the upper-case of every UTF-16 unit, used by
 * the directory index collation. Units past a short table map to themselves.
 */
export class Upcase {
  private constructor(private readonly table: Uint16Array) {}

  static fromData(data: Buffer): Upcase {
    const n = Math.min(65536, data.length >> 1);
    const table = new Uint16Array(n);
    for (let i = 0; i < n; i++) table[i] = data.readUInt16LE(2 * i);
    return new Upcase(table);
  }

  /** ASCII-only, for a volume whose $UpCase cannot be read. */
  static ascii(): Upcase {
    const table = new Uint16Array(128);
    for (let i = 0; i < 128; i++) table[i] = i >= 0x61 && i <= 0x7a ? i - 0x20 : i;
    return new Upcase(table);
  }

  up(c: number): number {
    return c < this.table.length ? this.table[c] : c;
  }

  /**
   * ntfs_names_full_collate: upper-cased units, then lengths; case-sensitive
   * collation breaks a tie on the first unit that differs as stored.
   */
  collate(a: Buffer, b: Buffer, ignoreCase: boolean): number {
    const la = a.length >> 1;
    const lb = b.length >> 1;
    const n = Math.min(la, lb);
    let firstRaw = -1;
    for (let i = 0; i < n; i++) {
      const ca = a.readUInt16LE(2 * i);
      const cb = b.readUInt16LE(2 * i);
      if (ca === cb) continue;
      if (firstRaw < 0) firstRaw = i;
      const ua = this.up(ca);
      const ub = this.up(cb);
      if (ua !== ub) return ua < ub ? -1 : 1;
    }
    if (la !== lb) return la < lb ? -1 : 1;
    if (ignoreCase || firstRaw < 0) return 0;
    return a.readUInt16LE(2 * firstRaw) < b.readUInt16LE(2 * firstRaw) ? -1 : 1;
  }
}
