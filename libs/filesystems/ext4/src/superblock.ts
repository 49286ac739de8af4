import { Errno, StrataError } from '@strata/errors';
import { join64, unreadable } from './corruption';
import { crc32c } from './crc32c';
import { Compat, Incompat, RoCompat, checkFeatures } from './features';

export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
const MAGIC = 0xef53;
const FLAG_UNSIGNED_HASH = 0x2;

export interface Superblock {
  inodesCount: number;
  blocksCount: number;
  reservedBlocksCount: number;
  firstDataBlock: number;
  blockSize: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  inodeSize: number;
  firstIno: number;
  revLevel: number;
  compat: number;
  incompat: number;
  roCompat: number;
  uuid: Buffer;
  label: string;
  reservedGdtBlocks: number;
  journalInum: number;
  hashSeed: number[];
  defHashVersion: number;
  /** 3 when directory hashes treat name bytes as unsigned chars, else 0 (x86's signed char). */
  hashUnsignedOffset: number;
  descSize: number;
  firstMetaBg: number;
  minExtraIsize: number;
  logGroupsPerFlex: number;
  overheadClusters: number;
  checksumSeed: number;
  creatorOs: number;
  groupCount: number;
}

export function hasCompat(sb: Superblock, bit: number): boolean {
  return (sb.compat & bit) !== 0;
}
export function hasIncompat(sb: Superblock, bit: number): boolean {
  return (sb.incompat & bit) !== 0;
}
export function hasRoCompat(sb: Superblock, bit: number): boolean {
  return (sb.roCompat & bit) !== 0;
}
export function hasMetadataCsum(sb: Superblock): boolean {
  return hasRoCompat(sb, RoCompat.METADATA_CSUM);
}
export function hasGroupDescCsum(sb: Superblock): boolean {
  return hasRoCompat(sb, RoCompat.METADATA_CSUM) || hasRoCompat(sb, RoCompat.GDT_CSUM);
}

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
}

/**
 * Parses and validates the primary superblock against the size of the
 * source, refusing what the kernel's mount refuses: a geometry that does not
 * add up is refused here so that later code can trust the counts.
 */
export function parseSuperblock(raw: Buffer, sourceSize: number): Superblock {
  if (raw.length < SUPERBLOCK_SIZE || raw.readUInt16LE(0x38) !== MAGIC) {
    throw new StrataError(Errno.EINVAL, 'no ext2/3/4 filesystem (bad magic)');
  }
  // A superblock the kernel would not mount: the whole filesystem is refused at open (EIO).
  const bad = (detail: string): StrataError => unreadable('superblock', `corrupt: ${detail}`);
  const logBlockSize = raw.readUInt32LE(0x18);
  if (logBlockSize > 6) throw bad(`block size 2^${10 + logBlockSize} is out of range`);
  const blockSize = 1024 << logBlockSize;
  const incompat = raw.readUInt32LE(0x60);
  const roCompat = raw.readUInt32LE(0x64);
  const compat = raw.readUInt32LE(0x5c);
  const revLevel = raw.readUInt32LE(0x4c);
  checkFeatures(incompat, roCompat);

  if ((roCompat & RoCompat.METADATA_CSUM) !== 0) {
    if (raw.readUInt8(0x175) !== 1) throw bad(`unknown checksum type ${raw.readUInt8(0x175)}`);
    const want = raw.readUInt32LE(0x3fc);
    const got = crc32c(0xffffffff, raw, 0, 0x3fc);
    if (want !== got) throw bad(`checksum mismatch (stored 0x${want.toString(16)}, computed 0x${got.toString(16)})`);
  }

  const is64 = (incompat & Incompat.BIT64) !== 0;
  const blocksCount = join64(raw.readUInt32LE(0x4), is64 ? raw.readUInt32LE(0x150) : 0, 'superblock');
  const reservedBlocksCount = join64(raw.readUInt32LE(0x8), is64 ? raw.readUInt32LE(0x154) : 0, 'superblock');
  const firstDataBlock = raw.readUInt32LE(0x14);
  const blocksPerGroup = raw.readUInt32LE(0x20);
  const inodesPerGroup = raw.readUInt32LE(0x28);
  const inodesCount = raw.readUInt32LE(0x0);
  const inodeSize = revLevel === 0 ? 128 : raw.readUInt16LE(0x58);
  const firstIno = revLevel === 0 ? 11 : raw.readUInt32LE(0x54);

  if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) {
    throw bad(`inode size ${inodeSize} is invalid`);
  }
  if (blocksPerGroup === 0 || blocksPerGroup > blockSize * 8) throw bad(`blocks per group ${blocksPerGroup} is invalid`);
  if (inodesPerGroup === 0 || inodesPerGroup > blockSize * 8) throw bad(`inodes per group ${inodesPerGroup} is invalid`);
  if (blockSize === 1024 ? firstDataBlock !== 1 && firstDataBlock !== 0 : firstDataBlock !== 0) {
    throw bad(`first data block ${firstDataBlock} is invalid for ${blockSize}-byte blocks`);
  }
  if (blocksCount <= firstDataBlock) throw bad(`block count ${blocksCount} is invalid`);
  if (blocksCount * blockSize > sourceSize) {
    throw bad(`block count ${blocksCount} exceeds the size of the image (${sourceSize} bytes): truncated image?`);
  }
  if (reservedBlocksCount > blocksCount) throw bad('reserved block count exceeds the block count');
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
  if (groupCount * inodesPerGroup !== inodesCount) {
    throw bad(`inode count ${inodesCount} does not match ${groupCount} groups of ${inodesPerGroup}`);
  }
  if (firstIno < 11 || firstIno > inodesCount) throw bad(`first inode ${firstIno} is invalid`);

  let descSize = 32;
  if (is64) {
    descSize = raw.readUInt16LE(0xfe);
    if (descSize < 64 || descSize > 1024 || (descSize & (descSize - 1)) !== 0) throw bad(`descriptor size ${descSize} is invalid`);
  }
  const flags = raw.readUInt32LE(0x160);
  // Neither flag: the kernel of a signed-char architecture (x86) hashes signed.
  const hashUnsignedOffset = flags & FLAG_UNSIGNED_HASH ? 3 : 0;
  const metaCsum = (roCompat & RoCompat.METADATA_CSUM) !== 0;
  const uuid = Buffer.from(raw.subarray(0x68, 0x78));
  const checksumSeed =
    (incompat & Incompat.CSUM_SEED) !== 0 ? raw.readUInt32LE(0x270) : metaCsum ? crc32c(0xffffffff, uuid) : 0;

  return {
    inodesCount,
    blocksCount,
    reservedBlocksCount,
    firstDataBlock,
    blockSize,
    blocksPerGroup,
    inodesPerGroup,
    inodeSize,
    firstIno,
    revLevel,
    compat,
    incompat,
    roCompat,
    uuid,
    label: cString(raw.subarray(0x78, 0x88)),
    reservedGdtBlocks: (compat & Compat.RESIZE_INODE) !== 0 ? raw.readUInt16LE(0xce) : 0,
    journalInum: (compat & Compat.HAS_JOURNAL) !== 0 ? raw.readUInt32LE(0xe0) : 0,
    hashSeed: [0, 1, 2, 3].map((i) => raw.readUInt32LE(0xec + 4 * i)),
    defHashVersion: raw.readUInt8(0xfc),
    hashUnsignedOffset,
    descSize,
    firstMetaBg: raw.readUInt32LE(0x104),
    minExtraIsize: raw.readUInt16LE(0x15c),
    logGroupsPerFlex: raw.readUInt8(0x174),
    overheadClusters: raw.readUInt32LE(0x248),
    checksumSeed,
    creatorOs: raw.readUInt32LE(0x48),
    groupCount,
  };
}

export function formatUuid(uuid: Buffer): string {
  const h = uuid.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function isPowerOf(n: number, base: number): boolean {
  let v = base;
  while (v < n) v *= base;
  return v === n;
}

/** Whether a group carries a superblock backup (and, outside meta_bg, a descriptor table copy). */
export function groupHasSuper(sb: Superblock, group: number): boolean {
  if (group <= 1) return true;
  if (!hasRoCompat(sb, RoCompat.SPARSE_SUPER)) return true;
  if (group % 2 === 0) return false;
  return isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
}

export function groupFirstBlock(sb: Superblock, group: number): number {
  return group * sb.blocksPerGroup + sb.firstDataBlock;
}
