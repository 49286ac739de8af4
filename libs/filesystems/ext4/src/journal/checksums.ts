/**
 * The checksums of a jbd2 journal. v2/v3 (csum_v2, csum_v3) are CRC-32C
 * chained from a seed made of the journal's uuid, over whole blocks with
 * their own checksum field zeroed; v1 (the compat "checksum" feature) is a
 * big-endian CRC-32 over a transaction's descriptor and data blocks, kept
 * in the commit block. Both are the raw register update the kernel's
 * crc32c()/crc32_be() perform: no initial or final inversion here.
 */
import { crc32c } from '../crc32c';

const BE_TABLE = buildBeTable();

function buildBeTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** The kernel's crc32_be (MSB first, polynomial 0x04c11db7). */
export function crc32Be(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = crc >>> 0;
  for (let i = start; i < end; i++) c = ((c << 8) ^ BE_TABLE[((c >>> 24) ^ data[i]) & 0xff]) >>> 0;
  return c;
}

/** j_csum_seed: CRC-32C of the journal uuid, from ~0. */
export function journalCsumSeed(uuid: Buffer): number {
  return crc32c(0xffffffff, uuid);
}

/** CRC-32C of `block` from `seed` with the 4 bytes at `fieldOffset` counted as zeros. */
export function crc32cWithoutField(seed: number, block: Buffer, fieldOffset: number): number {
  let c = crc32c(seed, block, 0, fieldOffset);
  c = crc32c(c, ZERO4);
  return crc32c(c, block, fieldOffset + 4, block.length);
}

const ZERO4 = Buffer.alloc(4);

/** The checksum of a journal data block as its v2/v3 tag records it: seeded by the transaction id. */
export function dataBlockChecksum(seed: number, sequence: number, block: Buffer): number {
  const seq = Buffer.alloc(4);
  seq.writeUInt32BE(sequence >>> 0);
  return crc32c(crc32c(seed, seq), block);
}

/**
 * The tail checksum (jbd2_journal_block_tail) of descriptor and revoke
 * blocks: the last 4 bytes, big-endian, over the block with them zeroed.
 */
export function verifyBlockTail(seed: number, block: Buffer): boolean {
  const at = block.length - 4;
  return block.readUInt32BE(at) === crc32cWithoutField(seed, block, at);
}
