import { Errno, StrataError } from '@strata/errors';
import { CSUM_SIZE, MAGIC, SUPER_INFO_SIZE } from './constants';
import { checksumMatches, type Checksummer } from './checksum';

/** The fields of struct btrfs_super_block this reader uses. */
export interface Superblock {
  fsid: Buffer;
  metadataUuid: Buffer;
  bytenr: bigint;
  generation: bigint;
  root: bigint;
  chunkRoot: bigint;
  logRoot: bigint;
  totalBytes: bigint;
  bytesUsed: bigint;
  rootDirObjectid: bigint;
  numDevices: bigint;
  sectorsize: number;
  nodesize: number;
  stripesize: number;
  sysChunkArray: Buffer;
  chunkRootGeneration: bigint;
  compatRoFlags: bigint;
  incompatFlags: bigint;
  csumType: number;
  rootLevel: number;
  chunkRootLevel: number;
  logRootLevel: number;
  devItem: Buffer;
  label: string;
  checksummer: Checksummer;
}

export const SYS_CHUNK_ARRAY_OFFSET = 811;
const SYS_CHUNK_ARRAY_MAX = 2048;
const DEV_ITEM_OFFSET = 201;
const DEV_ITEM_SIZE = 98;

export function hasMagic(buf: Buffer): boolean {
  return buf.length >= 72 && buf.subarray(64, 72).equals(MAGIC);
}

function fail(message: string): StrataError {
  return new StrataError(Errno.EINVAL, `btrfs superblock: ${message}`);
}

/**
 * Parses and validates one superblock copy read at `offset` (checksummed
 * with the algorithm its csum_type names, see checksummerFor), as
 * btrfs_validate_super does for what a read-only mount needs. A copy that
 * fails is EINVAL (the kernel refuses the mount with it).
 */
export function parseSuperblock(buf: Buffer, offset: number, checksummer: Checksummer): Superblock {
  if (buf.length < SUPER_INFO_SIZE) throw fail('short read');
  if (!hasMagic(buf)) throw fail('no btrfs filesystem (bad magic)');
  const csumType = buf.readUInt16LE(196);
  if (!checksumMatches(checksummer, buf.subarray(0, CSUM_SIZE), buf, CSUM_SIZE, SUPER_INFO_SIZE)) {
    throw new StrataError(Errno.EINVAL, `btrfs superblock at ${offset}: ${checksummer.name} checksum mismatch`);
  }
  const bytenr = buf.readBigUInt64LE(48);
  if (bytenr !== BigInt(offset)) throw fail(`copy at ${offset} says it belongs at ${bytenr}`);
  const sectorsize = buf.readUInt32LE(144);
  const nodesize = buf.readUInt32LE(148);
  const stripesize = buf.readUInt32LE(156);
  const pow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;
  if (!pow2(sectorsize) || sectorsize < 4096 || sectorsize > 65536) throw fail(`sector size ${sectorsize}`);
  if (!pow2(nodesize) || nodesize < sectorsize || nodesize > 65536) throw fail(`node size ${nodesize}`);
  const sysSize = buf.readUInt32LE(160);
  if (sysSize > SYS_CHUNK_ARRAY_MAX) throw fail(`sys_chunk_array_size ${sysSize}`);
  const rootLevel = buf[198];
  const chunkRootLevel = buf[199];
  const logRootLevel = buf[200];
  if (rootLevel >= 8 || chunkRootLevel >= 8 || logRootLevel >= 8) throw fail('tree level out of range');
  const incompatFlags = buf.readBigUInt64LE(188);
  const fsid = Buffer.from(buf.subarray(32, 48));
  const metadataUuid = (incompatFlags & (1n << 10n)) !== 0n ? Buffer.from(buf.subarray(571, 587)) : fsid;
  const labelRaw = buf.subarray(299, 299 + 256);
  const nul = labelRaw.indexOf(0);
  return {
    fsid,
    metadataUuid,
    bytenr,
    generation: buf.readBigUInt64LE(72),
    root: buf.readBigUInt64LE(80),
    chunkRoot: buf.readBigUInt64LE(88),
    logRoot: buf.readBigUInt64LE(96),
    totalBytes: buf.readBigUInt64LE(112),
    bytesUsed: buf.readBigUInt64LE(120),
    rootDirObjectid: buf.readBigUInt64LE(128),
    numDevices: buf.readBigUInt64LE(136),
    sectorsize,
    nodesize,
    stripesize,
    sysChunkArray: Buffer.from(buf.subarray(SYS_CHUNK_ARRAY_OFFSET, SYS_CHUNK_ARRAY_OFFSET + sysSize)),
    chunkRootGeneration: buf.readBigUInt64LE(164),
    compatRoFlags: buf.readBigUInt64LE(180),
    incompatFlags,
    csumType,
    rootLevel,
    chunkRootLevel,
    logRootLevel,
    devItem: Buffer.from(buf.subarray(DEV_ITEM_OFFSET, DEV_ITEM_OFFSET + DEV_ITEM_SIZE)),
    label: (nul < 0 ? labelRaw : labelRaw.subarray(0, nul)).toString('utf8'),
    checksummer,
  };
}

/** The canonical text of a 16-byte uuid, as blkid prints it. */
export function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
