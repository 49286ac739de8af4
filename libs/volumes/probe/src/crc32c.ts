const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli) without the final inversion, as ext4's superblock checksum uses it. */
export function crc32cRaw(data: Uint8Array, seed = 0xffffffff): number {
  let c = seed >>> 0;
  for (const b of data) c = TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}
