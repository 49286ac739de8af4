/**
 * Commit blocks (struct commit_header): the header, then checksum type and
 * size bytes, eight 32-bit checksum slots of which only the first is used,
 * and the commit time. csum v2/v3 journals checksum the whole block with
 * h_chksum[0] zeroed; v1 journals keep the transaction's crc32_be there.
 */
import { crc32c } from '../crc32c';
import { crc32cWithoutField } from './checksums';

const CHKSUM_TYPE = 0xc;
const CHKSUM_SIZE = 0xd;
const CHKSUM = 0x10;
const COMMIT_SEC = 0x30;
/** sizeof(struct commit_header) on a 64-bit kernel (60 bytes padded to 8-byte alignment). */
const COMMIT_HEADER_SIZE = 64;

export const CRC32_CHKSUM = 1;
export const CRC32_CHKSUM_SIZE = 4;

export interface CommitBlock {
  /** h_commit_sec: compared, never interpreted (may be garbage on a stale block). */
  commitSec: bigint;
  chksumType: number;
  chksumSize: number;
  chksum: number;
}

export function parseCommit(block: Buffer): CommitBlock {
  return {
    commitSec: block.readBigUInt64BE(COMMIT_SEC),
    chksumType: block.readUInt8(CHKSUM_TYPE),
    chksumSize: block.readUInt8(CHKSUM_SIZE),
    chksum: block.readUInt32BE(CHKSUM),
  };
}

/** jbd2_commit_block_csum_verify (csum v2/v3 only). */
export function commitChecksumOk(seed: number, block: Buffer): boolean {
  return block.readUInt32BE(CHKSUM) === crc32cWithoutField(seed, block, CHKSUM);
}

/**
 * jbd2_commit_block_csum_verify_partial: a commit block of which only the
 * header reached the disk (the rest of the block is stale) still counts
 * when its checksum matches the header followed by zeros.
 */
export function partialCommitChecksumOk(seed: number, block: Buffer): boolean {
  const copy = Buffer.alloc(block.length);
  block.copy(copy, 0, 0, COMMIT_HEADER_SIZE);
  copy.writeUInt32BE(0, CHKSUM);
  return block.readUInt32BE(CHKSUM) === crc32c(seed, copy);
}
