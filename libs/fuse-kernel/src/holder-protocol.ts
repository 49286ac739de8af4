/**
 * The fd holder's wire format (native/holder/protocol.h): one SOCK_SEQPACKET
 * packet per message, a 16-byte little-endian header
 * `u32 magic "SFH1" | u8 type | u8 flags | u16 idLength | u32 metaLength | u32 value`,
 * then the id and meta bytes; fds travel beside it as SCM_RIGHTS.
 */
import { StrataError } from '@strata/errors';

export const HOLDER_MAGIC = 0x31484653;
export const HEADER_BYTES = 16;
export const MAX_ID_BYTES = 255;
export const MAX_META_BYTES = 64 * 1024;
export const MAX_FDS_PER_ENTRY = 64;
export const MAX_ENTRIES = 1024;
export const MAX_MESSAGE_BYTES = HEADER_BYTES + MAX_ID_BYTES + MAX_META_BYTES;

export const MessageType = {
  PUT: 1,
  LIST: 2,
  DROP: 3,
  HEARTBEAT: 4,
  BYE: 5,
  STATUS: 6,
  OK: 0x81,
  ERR: 0x82,
  ENTRY: 0x83,
  END: 0x84,
} as const;

export const FLAG_HARD = 1;

export interface HolderMessage {
  type: number;
  flags: number;
  value: number;
  id: Buffer;
  meta: Buffer;
}

export function encodeMessage(type: number, options: { flags?: number; value?: number; id?: Buffer; meta?: Buffer } = {}): Buffer {
  const id = options.id ?? Buffer.alloc(0);
  const meta = options.meta ?? Buffer.alloc(0);
  if (id.length > MAX_ID_BYTES) throw StrataError.invalid(`a holder id is at most ${MAX_ID_BYTES} bytes (${id.length})`);
  if (meta.length > MAX_META_BYTES) throw StrataError.invalid(`holder meta is at most ${MAX_META_BYTES} bytes (${meta.length})`);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(HOLDER_MAGIC, 0);
  header.writeUInt8(type, 4);
  header.writeUInt8(options.flags ?? 0, 5);
  header.writeUInt16LE(id.length, 6);
  header.writeUInt32LE(meta.length, 8);
  header.writeUInt32LE(options.value ?? 0, 12);
  return Buffer.concat([header, id, meta]);
}

/** Parses one packet from the holder; EIO for anything that is not one. */
export function decodeMessage(bytes: Buffer): HolderMessage {
  if (bytes.length < HEADER_BYTES || bytes.readUInt32LE(0) !== HOLDER_MAGIC) {
    throw StrataError.io('the fd holder answered something that is not its protocol');
  }
  const idLength = bytes.readUInt16LE(6);
  const metaLength = bytes.readUInt32LE(8);
  if (idLength > MAX_ID_BYTES || metaLength > MAX_META_BYTES || HEADER_BYTES + idLength + metaLength !== bytes.length) {
    throw StrataError.io('the fd holder answered a packet whose lengths do not add up');
  }
  return {
    type: bytes.readUInt8(4),
    flags: bytes.readUInt8(5),
    value: bytes.readUInt32LE(12),
    id: bytes.subarray(HEADER_BYTES, HEADER_BYTES + idLength),
    meta: bytes.subarray(HEADER_BYTES + idLength),
  };
}
