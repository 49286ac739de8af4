/**
 * The journal superblock (journal_superblock_t, block 0 of the journal),
 * validated as jbd2's journal_check_superblock and load_superblock do, and
 * the geometry recovery derives from it: the circular log is [first, last),
 * with the fast-commit area (when the feature is on) cut off its end.
 */
import { refused, unsupported } from '../corruption';
import { BlockType, JBD2_MAGIC } from './block-header';
import { crc32cWithoutField, journalCsumSeed } from './checksums';

export const JSB_SIZE = 1024;

export const JournalCompat = { CHECKSUM: 0x1 } as const;
export const JournalIncompat = {
  REVOKE: 0x1,
  BIT64: 0x2,
  ASYNC_COMMIT: 0x4,
  CSUM_V2: 0x8,
  CSUM_V3: 0x10,
  FAST_COMMIT: 0x20,
} as const;

const KNOWN_INCOMPAT = 0x3f;
const KNOWN_RO_COMPAT = 0;
const CRC32C_CHKSUM = 4;
/** JBD2_MIN_JOURNAL_BLOCKS: the kernel refuses a shorter log. */
const MIN_JOURNAL_BLOCKS = 1024;
/** JBD2_DEFAULT_FAST_COMMIT_BLOCKS, used when s_num_fc_blks is 0. */
const DEFAULT_FAST_COMMIT_BLOCKS = 256;

export interface JournalSuperblock {
  /** The superblock's 1024 bytes as read (to notice a later change). */
  raw: Buffer;
  version: 1 | 2;
  maxLen: number;
  /** First log block. */
  first: number;
  /** One past the last log block (j_last): the log wraps from here to `first`. */
  last: number;
  /** Blocks of the journal file recovery may read (j_total_len). */
  totalLen: number;
  /** Transaction id of the oldest transaction in the log (s_sequence). */
  sequence: number;
  /** Log block of the oldest transaction, 0 when the log is empty (s_start). */
  start: number;
  /** Where a clean journal's next transaction starts (s_head, 0 when unset). */
  head: number;
  errno: number;
  compat: number;
  incompat: number;
  roCompat: number;
  uuid: Buffer;
  /** csum_v2 or csum_v3: descriptor, revoke, commit and data blocks carry CRC-32C checksums. */
  csumV2or3: boolean;
  csumV3: boolean;
  /** v1 transaction checksums (crc32_be in the commit block). */
  checksumV1: boolean;
  bit64: boolean;
  asyncCommit: boolean;
  fastCommit: boolean;
  /** First block of the fast-commit area (j_fc_first), when the feature is on. */
  fcFirst: number;
  csumSeed: number;
  /** Bytes of one descriptor tag, before the optional 16-byte uuid (journal_tag_bytes). */
  tagBytes: number;
}

function tagBytes(csumV3: boolean, csumV2: boolean, bit64: boolean): number {
  if (csumV3) return 16;
  const size = 12 + (csumV2 ? 2 : 0);
  return bit64 ? size : size - 4;
}

/**
 * Parses block 0 of the journal. `fileBlocks` is the journal inode's size
 * in blocks, `blockSize` the filesystem's (a journal inside the filesystem
 * uses the same block size).
 */
export function parseJournalSuperblock(block: Buffer, blockSize: number, fileBlocks: number): JournalSuperblock {
  const bad = (detail: string): Error => refused('journal superblock', detail);
  if (block.length < JSB_SIZE) throw bad('short block');
  const raw = Buffer.from(block.subarray(0, JSB_SIZE));
  if (raw.readUInt32BE(0) !== JBD2_MAGIC) throw bad(`bad magic 0x${raw.readUInt32BE(0).toString(16)} (no valid journal superblock)`);
  if (raw.readUInt32BE(0xc) !== blockSize) throw bad(`block size ${raw.readUInt32BE(0xc)} differs from the filesystem's ${blockSize}`);
  const type = raw.readUInt32BE(4);
  if (type !== BlockType.SUPERBLOCK_V1 && type !== BlockType.SUPERBLOCK_V2) throw bad(`unrecognised superblock format ${type}`);
  const version = type === BlockType.SUPERBLOCK_V2 ? 2 : 1;
  // The kernel's j_total_len is 32 bits wide.
  let totalLen = Math.min(fileBlocks, 0xffffffff);
  const maxLen = raw.readUInt32BE(0x10);
  if (maxLen > totalLen) throw bad(`s_maxlen ${maxLen} exceeds the journal file (${totalLen} blocks)`);
  totalLen = Math.min(totalLen, maxLen);
  const first = raw.readUInt32BE(0x14);
  if (first === 0 || first >= totalLen) throw bad(`invalid first log block ${first}`);

  // A version 1 superblock has no feature fields.
  const compat = version === 2 ? raw.readUInt32BE(0x24) : 0;
  const incompat = version === 2 ? raw.readUInt32BE(0x28) : 0;
  const roCompat = version === 2 ? raw.readUInt32BE(0x2c) : 0;
  const unknownIncompat = incompat & ~KNOWN_INCOMPAT;
  const unknownRo = roCompat & ~KNOWN_RO_COMPAT;
  if (unknownIncompat || unknownRo) {
    throw unsupported(`journal features (incompat 0x${unknownIncompat.toString(16)}, ro_compat 0x${unknownRo.toString(16)})`);
  }
  const csumV2 = (incompat & JournalIncompat.CSUM_V2) !== 0;
  const csumV3 = (incompat & JournalIncompat.CSUM_V3) !== 0;
  const checksumV1 = (compat & JournalCompat.CHECKSUM) !== 0;
  if (csumV2 && csumV3) throw bad('checksum v2 and v3 are both set');
  if ((csumV2 || csumV3) && checksumV1) throw bad('checksum v1 and v2/v3 are both set');
  const uuid = Buffer.from(raw.subarray(0x30, 0x40));
  if (csumV2 || csumV3) {
    if (raw.readUInt8(0x50) !== CRC32C_CHKSUM) throw bad(`unknown checksum type ${raw.readUInt8(0x50)}`);
    const want = raw.readUInt32BE(0xfc);
    const got = crc32cWithoutField(0xffffffff, raw, 0xfc) >>> 0;
    if (want !== got) throw bad(`checksum mismatch (stored 0x${want.toString(16)}, computed 0x${got.toString(16)})`);
  }
  const fastCommit = (incompat & JournalIncompat.FAST_COMMIT) !== 0;
  const fcBlocks = fastCommit ? raw.readUInt32BE(0x54) || DEFAULT_FAST_COMMIT_BLOCKS : 0;
  if (maxLen < MIN_JOURNAL_BLOCKS || maxLen - MIN_JOURNAL_BLOCKS < fcBlocks) throw bad(`journal too short (${maxLen} blocks, ${fcBlocks} for fast commits)`);
  if (first + MIN_JOURNAL_BLOCKS > maxLen + 1) throw bad(`journal too short (blocks ${first}-${maxLen})`);
  const last = maxLen - fcBlocks;
  const start = raw.readUInt32BE(0x1c);
  if (start !== 0 && (start < first || start >= last)) throw bad(`log start ${start} is outside the log [${first}, ${last})`);
  return {
    raw,
    version,
    maxLen,
    first,
    last,
    totalLen,
    sequence: raw.readUInt32BE(0x18),
    start,
    head: version === 2 ? raw.readUInt32BE(0x58) : 0,
    errno: raw.readInt32BE(0x20),
    compat,
    incompat,
    roCompat,
    uuid,
    csumV2or3: csumV2 || csumV3,
    csumV3,
    checksumV1,
    bit64: (incompat & JournalIncompat.BIT64) !== 0,
    asyncCommit: (incompat & JournalIncompat.ASYNC_COMMIT) !== 0,
    fastCommit,
    fcFirst: last + 1,
    csumSeed: journalCsumSeed(uuid),
    tagBytes: tagBytes(csumV3, csumV2, (incompat & JournalIncompat.BIT64) !== 0),
  };
}

/** The superblock checksum as jbd2 computes it (for tests that edit a superblock). */
export function journalSuperblockChecksum(raw: Buffer): number {
  return crc32cWithoutField(0xffffffff, raw.subarray(0, JSB_SIZE), 0xfc);
}
