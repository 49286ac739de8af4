import { corrupt, need } from './errors';

/** struct btrfs_file_extent_item. */
export interface FileExtent {
  ramBytes: bigint;
  compression: number;
  encryption: number;
  otherEncoding: number;
  type: number;
  /** Inline extents: the (possibly compressed) bytes stored in the item. */
  inline?: Buffer;
  diskBytenr: bigint;
  diskNumBytes: bigint;
  offset: bigint;
  numBytes: bigint;
}

const INLINE_HEADER = 21;
const ITEM_SIZE = 53;

export function parseFileExtent(buf: Buffer): FileExtent {
  need(buf, 0, INLINE_HEADER, 'file extent');
  const type = buf[20];
  const base = { ramBytes: buf.readBigUInt64LE(8), compression: buf[16], encryption: buf[17], otherEncoding: buf.readUInt16LE(18), type };
  if (type === 0) return { ...base, inline: buf.subarray(INLINE_HEADER), diskBytenr: 0n, diskNumBytes: 0n, offset: 0n, numBytes: base.ramBytes };
  if (type !== 1 && type !== 2) throw corrupt(`file extent: type ${type}`);
  if (buf.length !== ITEM_SIZE) throw corrupt(`file extent: item of ${buf.length} bytes`);
  return {
    ...base,
    diskBytenr: buf.readBigUInt64LE(21),
    diskNumBytes: buf.readBigUInt64LE(29),
    offset: buf.readBigUInt64LE(37),
    numBytes: buf.readBigUInt64LE(45),
  };
}
