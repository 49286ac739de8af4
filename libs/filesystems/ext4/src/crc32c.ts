/**
 * CRC-32C (Castagnoli), as ext4's metadata_csum uses it: the raw register
 * update, without the customary initial and final inversion, because ext4
 * chains it (seed from the uuid, then the inode number, then the block).
 */
const TABLE = buildTable();

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

export function crc32c(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = crc >>> 0;
  for (let i = start; i < end; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

export function crc32cU32(crc: number, value: number): number {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return crc32c(crc, b);
}

export function crc32cU64(crc: number, value: number): number {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  return crc32c(crc, b);
}

/** Feeds `count` zero bytes, for checksums computed with their own field zeroed. */
export function crc32cZeros(crc: number, count: number): number {
  return crc32c(crc, Buffer.alloc(count));
}
