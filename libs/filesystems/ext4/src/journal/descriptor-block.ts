/**
 * Descriptor blocks: after the header, one tag per data block that follows
 * in the log, each naming the filesystem block the data belongs to. Tag
 * layouts (journal_block_tag_t / journal_block_tag3_t): block number (low
 * 32 bits), then a 16-bit checksum and 16-bit flags (csum v2 and older) or
 * 32-bit flags (csum v3), the high 32 bits of the block number (64bit
 * journals), and for csum v3 a 32-bit checksum. Either way the flags'
 * low 16 bits sit at bytes 6-7. A tag without SAME_UUID is followed by a
 * 16-byte uuid; LAST_TAG ends the list; v2/v3 reserve a 4-byte tail checksum.
 */
import { HEADER_SIZE } from './block-header';
import type { JournalSuperblock } from './journal-superblock';

export const TagFlag = {
  /** The block's first 4 bytes were the jbd2 magic and are stored as zeros. */
  ESCAPE: 0x1,
  SAME_UUID: 0x2,
  DELETED: 0x4,
  LAST_TAG: 0x8,
} as const;

const UUID_SIZE = 16;
const TAIL_SIZE = 4;

export interface Tag {
  /** Filesystem block the data block is a copy of (may exceed 2^53 on garbage: checked by the caller). */
  block: number;
  flags: number;
  /** The tag's checksum of the data block (csum v3: 32 bits, v2: 16 bits), when the journal has one. */
  checksum: number | undefined;
}

/**
 * The tags of a descriptor block, as count_tags and the replay loop walk
 * them: while a whole tag still fits before the tail, stopping after
 * LAST_TAG. At most (block size / tag size) tags, so the walk is bounded.
 */
export function parseTags(jsb: JournalSuperblock, block: Buffer): Tag[] {
  const size = block.length - (jsb.csumV2or3 ? TAIL_SIZE : 0);
  const tags: Tag[] = [];
  let at = HEADER_SIZE;
  while (at + jsb.tagBytes <= size) {
    const flags = block.readUInt16BE(at + 6);
    const high = jsb.bit64 ? block.readUInt32BE(at + 8) : 0;
    const checksum = jsb.csumV3 ? block.readUInt32BE(at + 12) : jsb.csumV2or3 ? block.readUInt16BE(at + 4) : undefined;
    tags.push({ block: high * 0x1_0000_0000 + block.readUInt32BE(at), flags, checksum });
    at += jsb.tagBytes;
    if (!(flags & TagFlag.SAME_UUID)) at += UUID_SIZE;
    if (flags & TagFlag.LAST_TAG) break;
  }
  return tags;
}
