import { SessionResponse } from '@strata/protocol';

/**
 * Read data at least this large is kept as a view of the received message.
 * grpc-js assembles every message with Buffer.concat into a buffer of its
 * own; below 4 KiB that buffer is a slice of node's shared pool, and a view
 * would pin the pool's 8 KiB for as long as a cache keeps the data.
 */
export const VIEW_READ_BYTES = 64 << 10;

/** A varint at `at` as a safe integer and where it ends; undefined past the buffer, past 2^53 or malformed. */
function varintAt(buf: Buffer, at: number, end: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8 && at + i < end; i++) {
    const b = buf[at + i];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return Number.isSafeInteger(value) ? { value, next: at + i + 1 } : undefined;
    scale *= 0x80;
  }
  return undefined;
}

/** A ReadResponse in [at, end) in the encoder's own shape (offset?, data, eof?), its data a view; undefined for anything else. */
function readAnswerAt(buf: Buffer, at: number, end: number): { offset: number; data: Buffer; eof: boolean } | undefined {
  let offset = 0;
  if (buf[at] === 0x08) {
    const v = varintAt(buf, at + 1, end);
    if (!v) return undefined;
    offset = v.value;
    at = v.next;
  }
  if (buf[at] !== 0x12) return undefined;
  const n = varintAt(buf, at + 1, end);
  if (!n || n.value < VIEW_READ_BYTES || n.next + n.value > end) return undefined;
  const data = buf.subarray(n.next, n.next + n.value);
  at = n.next + n.value;
  let eof = false;
  if (at < end) {
    // A one-byte bool only; anything longer or any other field goes to the generated decoder.
    if (buf[at] !== 0x18 || at + 2 !== end || buf[at + 1] >= 0x80) return undefined;
    eof = buf[at + 1] !== 0;
    at = end;
  }
  return at === end ? { offset, data, eof } : undefined;
}

/**
 * A SessionResponse from the bytes grpc-js received. The generated decoder
 * copies a read's data out of the message (Buffer.from of the reader's
 * bytes); on sequential reads that copy, and collecting it, was a large
 * part of the agent's CPU. A read answer as the resolver encodes it (id,
 * then the read with offset, data, eof in field order) keeps its data as a
 * view of the message buffer, which grpc-js allocated for this message
 * alone; everything else, and anything unusual (other fields, repeats,
 * long varints), is decoded as generated, so the result is always what
 * the generated decoder returns.
 */
export function sessionResponseFromBytes(buf: Buffer): SessionResponse {
  const end = buf.length;
  let at = 0;
  let id = 0;
  if (buf[at] === 0x08) {
    const v = varintAt(buf, at + 1, end);
    if (v) {
      id = v.value;
      at = v.next;
    } else at = -1;
  }
  if (at >= 0 && buf[at] === 0x22) {
    const n = varintAt(buf, at + 1, end);
    if (n && n.next + n.value === end) {
      const read = readAnswerAt(buf, n.next, end);
      if (read) return { id, response: { $case: 'read', read } };
    }
  }
  return SessionResponse.decode(buf);
}
