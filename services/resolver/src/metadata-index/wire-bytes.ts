import { StrataError } from '@strata/errors';

/** A varint never needs more bytes than this for a safe integer (7 × 8 = 56 bits ≥ 53). */
const MAX_VARINT_BYTES = 8;

/** The corruption every malformed index becomes: the reader's caller ignores the index and rebuilds it. */
export function corrupt(why: string): StrataError {
  return StrataError.corrupt(`metadata index: ${why}`);
}

/**
 * Appends bytes into growing chunks, never past `maxBytes` (the builder
 * gives up on an index that would be bigger than its bound).
 */
export class ByteWriter {
  private chunks: Buffer[] = [];
  private buf = Buffer.allocUnsafe(64 * 1024);
  private pos = 0;
  private done = 0;

  constructor(private readonly maxBytes: number) {}

  get length(): number {
    return this.done + this.pos;
  }

  private room(n: number): void {
    if (this.length + n > this.maxBytes) throw StrataError.invalid(`metadata index would exceed ${this.maxBytes} bytes`);
    if (this.pos + n <= this.buf.length) return;
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.done += this.pos;
    this.buf = Buffer.allocUnsafe(Math.max(64 * 1024, n));
    this.pos = 0;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v;
  }

  /** An unsigned safe integer, 7 bits a byte (arithmetic, not bitwise: values pass 2^32). */
  uvar(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw StrataError.invalid(`metadata index: ${v} is not an unsigned safe integer`);
    this.room(MAX_VARINT_BYTES);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  /** A signed integer (times before 1970), zigzag so small magnitudes stay short. */
  svar(v: number): void {
    if (!Number.isSafeInteger(v) || Math.abs(v) > 2 ** 51) throw StrataError.invalid(`metadata index: ${v} is out of the signed range`);
    this.uvar(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  bytes(b: Uint8Array): void {
    this.uvar(b.length);
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  finish(): Buffer {
    return Buffer.concat([...this.chunks, this.buf.subarray(0, this.pos)]);
  }
}

/** Reads what ByteWriter wrote, every read checked against the end: a short or hostile buffer is EUCLEAN, never a crash. */
export class ByteReader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
  ) {}

  u8(): number {
    if (this.pos >= this.end) throw corrupt('truncated');
    return this.buf[this.pos++];
  }

  uvar(): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.end) throw corrupt('truncated varint');
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(v)) throw corrupt('varint out of range');
        return v;
      }
      scale *= 0x80;
    }
    throw corrupt('varint too long');
  }

  svar(): number {
    const u = this.uvar();
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  /** A length-prefixed run of at most `max` bytes, as a view (no copy). */
  bytes(max: number): Buffer {
    const n = this.uvar();
    if (n > max) throw corrupt(`field of ${n} bytes exceeds ${max}`);
    if (this.pos + n > this.end) throw corrupt('truncated field');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** Skips a length-prefixed run, for a reader that wants the position only. */
  skipBytes(max: number): { off: number; len: number } {
    const n = this.uvar();
    if (n > max) throw corrupt(`field of ${n} bytes exceeds ${max}`);
    if (this.pos + n > this.end) throw corrupt('truncated field');
    const off = this.pos;
    this.pos += n;
    return { off, len: n };
  }
}
