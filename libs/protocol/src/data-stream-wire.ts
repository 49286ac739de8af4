/**
 * The data stream's wire format, shared by the resolver that serves it and
 * the client that reads it: a plain socket beside the gRPC port carrying
 * only Session reads (issue 28: bulk data without grpc-js's assembly).
 *
 * Little-endian:
 *   client → resolver: DATA_MAGIC once, then frames of
 *     u32 length, then `length` bytes of a SessionRequest holding a read.
 *   resolver → client: per request, a header of ANSWER_HEADER_BYTES:
 *     u32 id low, u32 id high, u32 offset low, u32 offset high,
 *     u8 kind (ANSWER_DATA or ANSWER_ERROR), u8 eof, u16 zero,
 *     u32 length; then `length` bytes: the file data, or an ErrorInfo.
 */
export const DATA_MAGIC = Buffer.from('STRATAD1');
export const ANSWER_HEADER_BYTES = 24;
export const ANSWER_DATA = 0;
export const ANSWER_ERROR = 1;
/** The Session stream's initial metadata key naming the data stream's port. */
export const DATA_PORT_HEADER = 'strata-data-port';
/** Longest ErrorInfo sent or accepted. */
export const MAX_ERROR_BYTES = 64 << 10;

/** The header of one answer. */
export function answerHeader(id: number, offset: number, kind: number, eof: boolean, length: number): Buffer {
  const h = Buffer.alloc(ANSWER_HEADER_BYTES);
  h.writeUInt32LE(id % 2 ** 32, 0);
  h.writeUInt32LE(Math.floor(id / 2 ** 32), 4);
  h.writeUInt32LE(offset % 2 ** 32, 8);
  h.writeUInt32LE(Math.floor(offset / 2 ** 32), 12);
  h[16] = kind;
  h[17] = eof ? 1 : 0;
  h.writeUInt32LE(length, 20);
  return h;
}
