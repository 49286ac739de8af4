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
 * A SessionResponse as protobuf bytes for grpc-js. The generated
 * serializer copies a 1 MiB read twice after encoding it (BinaryWriter's
 * finish(), then Buffer.from of the Uint8Array), and garbage collection of
 * those copies was the resolver's largest cost on sequential reads. A read
 * answer is written here with its data copied once, bytes identical to the
 * generated encoder's (same fields, same order, defaults omitted); anything
 * else is encoded as generated, without the extra copy.
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
    const out = Buffer.allocUnsafe(head.length + data.length + tail.length);
    out.set(head, 0);
    out.set(data, head.length);
    out.set(tail, head.length + data.length);
    return out;
  }
  const u8 = SessionResponse.encode(value).finish();
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}
