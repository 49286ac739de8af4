import { SessionResponse } from '@strata/protocol';

/** Reads at least this large take the one-copy path; smaller answers are not worth a second encoder. */
const FAST_READ_BYTES = 4096;

function varint(n: number, out: number[]): void {
  // Safe integers only (the protocol's uint64 are JS numbers): divide rather than shift past 32 bits.
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

/**
 * A read answer's encoding as three pieces (envelope, the file data itself,
 * the eof tail), copied into place only by the one who places it. grpc-js
 * (1.14, server-interceptors serializeMessage) reads `byteLength` and calls
 * `copy(output, 5)` to put the message behind its 5-byte frame header: with
 * a contiguous message that is a second 1 MiB copy and a second 1 MiB
 * allocation per read. session-wire.test.ts runs this through a real
 * grpc-js server and client, so a grpc-js that used the result otherwise
 * fails there, not in production.
 */
export class ScatteredMessage {
  readonly byteLength: number;

  constructor(private readonly pieces: readonly Uint8Array[]) {
    let n = 0;
    for (const p of pieces) n += p.byteLength;
    this.byteLength = n;
  }

  get length(): number {
    return this.byteLength;
  }

  /** As Buffer.prototype.copy: bytes [sourceStart, sourceEnd) of the message into `target` from `targetStart`; returns the count copied. */
  copy(target: Uint8Array, targetStart = 0, sourceStart = 0, sourceEnd = this.byteLength): number {
    const end = Math.min(sourceEnd, this.byteLength, sourceStart + Math.max(0, target.byteLength - targetStart));
    let copied = 0;
    let base = 0;
    for (const p of this.pieces) {
      const from = Math.max(sourceStart + copied, base);
      const to = Math.min(end, base + p.byteLength);
      if (from < to) {
        target.set(p.subarray(from - base, to - base), targetStart + copied);
        copied += to - from;
      }
      base += p.byteLength;
    }
    return copied;
  }

  /** The message contiguous (tests, and any caller that needs a real Buffer). */
  toBuffer(): Buffer {
    const out = Buffer.allocUnsafe(this.byteLength);
    this.copy(out);
    return out;
  }
}

/**
 * A SessionResponse as protobuf bytes for grpc-js. The generated
 * serializer copies a 1 MiB read twice after encoding it (BinaryWriter's
 * finish(), then Buffer.from of the Uint8Array), and garbage collection of
 * those copies was the resolver's largest cost on sequential reads. A read
 * answer is given to grpc-js as pieces (ScatteredMessage) that grpc-js
 * copies once into its frame, bytes identical to the generated encoder's
 * (same fields, same order, defaults omitted); anything else is encoded as
 * generated, without the extra copy.
 */
export function sessionResponseBytes(value: SessionResponse): Buffer {
  const r = value.response;
  if (r?.$case === 'read' && r.read.data.length >= FAST_READ_BYTES) {
    const { offset, data, eof } = r.read;
    const inner: number[] = [];
    if (offset !== 0) {
      inner.push(0x08);
      varint(offset, inner);
    }
    inner.push(0x12);
    varint(data.length, inner);
    const tail = eof ? [0x18, 0x01] : [];
    const head: number[] = [];
    if (value.id !== 0) {
      head.push(0x08);
      varint(value.id, head);
    }
    head.push(0x22);
    varint(inner.length + data.length + tail.length, head);
    head.push(...inner);
    // grpc-js's serializer type says Buffer; it uses byteLength and copy() only (see ScatteredMessage).
    return new ScatteredMessage([Buffer.from(head), data, Buffer.from(tail)]) as unknown as Buffer;
  }
  const u8 = SessionResponse.encode(value).finish();
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}
