/**
 * ext4 fast commits: after the last full transaction, the fast-commit area
 * (past the log's end) may hold tag-length-value records of inode-level
 * changes that ext4_fc_replay applies on top of the replayed log. Their
 * replay starts only when the area's first record is a head tag
 * (EXT4_FC_TAG_HEAD, struct ext4_fc_head {features, tid}) carrying the tid
 * of the transaction after the last committed one; anything else is a
 * stale area the kernel stops at.
 */
const FC_TAG_HEAD = 0x9;
const FC_HEAD_LEN = 8;

/** Whether this fast-commit block starts a fast commit of transaction `tid`. */
export function startsFastCommit(block: Buffer, tid: number): boolean {
  if (block.length < 4 + FC_HEAD_LEN) return false;
  return block.readUInt16LE(0) === FC_TAG_HEAD && block.readUInt16LE(2) === FC_HEAD_LEN && block.readUInt32LE(8) === tid >>> 0;
}
