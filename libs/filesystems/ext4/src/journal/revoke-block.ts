/**
 * Revoke blocks (jbd2_journal_revoke_header_t): the header, r_count (bytes
 * used, header included), then 4- or 8-byte (64bit journals) block numbers
 * whose earlier copies in the log must not be replayed. v2/v3 journals end
 * the block with a tail checksum.
 */
import { refused } from '../corruption';
import type { JournalSuperblock } from './journal-superblock';

const REVOKE_HEADER_SIZE = 16;
const TAIL_SIZE = 4;

/** scan_revoke_records: a count larger than the block is refused (the kernel's EINVAL). */
export function revokeCount(jsb: JournalSuperblock, block: Buffer, where: string): number {
  const count = block.readUInt32BE(12);
  const room = block.length - (jsb.csumV2or3 ? TAIL_SIZE : 0);
  if (count > room) throw refused(`journal revoke block ${where}`, `r_count ${count} exceeds the ${room} bytes of the block`);
  return count;
}

/** The revoked filesystem block numbers (at most block size / 4 of them). */
export function parseRevokes(jsb: JournalSuperblock, block: Buffer, where: string): number[] {
  const max = revokeCount(jsb, block, where);
  const len = jsb.bit64 ? 8 : 4;
  const out: number[] = [];
  for (let at = REVOKE_HEADER_SIZE; at + len <= max; at += len) {
    out.push(len === 4 ? block.readUInt32BE(at) : block.readUInt32BE(at) * 0x1_0000_0000 + block.readUInt32BE(at + 4));
  }
  return out;
}
