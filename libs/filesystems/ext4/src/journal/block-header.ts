/**
 * The 12-byte header every jbd2 metadata block starts with (journal_header_t,
 * big-endian like everything in the journal): magic, block type, and the
 * transaction id the block belongs to.
 */
export const JBD2_MAGIC = 0xc03b3998;
export const HEADER_SIZE = 12;

export const BlockType = {
  DESCRIPTOR: 1,
  COMMIT: 2,
  SUPERBLOCK_V1: 3,
  SUPERBLOCK_V2: 4,
  REVOKE: 5,
} as const;

export interface BlockHeader {
  blockType: number;
  sequence: number;
}

/** The header of a journal block, or undefined when the block does not start with the jbd2 magic. */
export function parseHeader(block: Buffer): BlockHeader | undefined {
  if (block.length < HEADER_SIZE || block.readUInt32BE(0) !== JBD2_MAGIC) return undefined;
  return { blockType: block.readUInt32BE(4), sequence: block.readUInt32BE(8) };
}

/** tid_geq: transaction ids are compared modulo 2^32, as the kernel does. */
export function tidGeq(x: number, y: number): boolean {
  return ((x - y) | 0) >= 0;
}

/** tid_gt. */
export function tidGt(x: number, y: number): boolean {
  return ((x - y) | 0) > 0;
}

export function nextTid(tid: number): number {
  return (tid + 1) >>> 0;
}
