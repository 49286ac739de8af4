/** The CRC-16 (poly 0x8005, reflected) of the older gdt_csum group-descriptor checksum. */
const TABLE = buildTable();

function buildTable(): Uint16Array {
  const table = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    table[n] = c;
  }
  return table;
}

export function crc16(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = crc & 0xffff;
  for (let i = start; i < end; i++) c = (TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8)) & 0xffff;
  return c;
}
