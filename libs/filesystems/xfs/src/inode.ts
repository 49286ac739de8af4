import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '@strata/posix';
import { crcMatches } from './checksum';
import { corrupt } from './errors';
import { Incompat, type Superblock } from './superblock';

const DINODE_MAGIC = 0x494e; // 'IN'
const V3_CORE_SIZE = 176;
const V2_CORE_SIZE = 100;
const DINODE_CRC_OFFSET = 100;

export const ForkFormat = { DEV: 0, LOCAL: 1, EXTENTS: 2, BTREE: 3 } as const;

export const DiFlag = { REALTIME: 0x1 } as const;
export const DiFlag2 = { REFLINK: 0x2, COWEXTSIZE: 0x4, BIGTIME: 0x8, NREXT64: 0x10 } as const;

const NS = 1_000_000_000n;
const BIGTIME_EPOCH_OFFSET_NS = 2n ** 31n * NS;

/** One decoded inode core with its two forks' bytes, as xfs_inode_from_disk reads it. */
export interface XfsInode {
  ino: number;
  mode: number;
  version: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  nblocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  crtimeNs?: bigint;
  flags: number;
  flags2: number;
  format: number;
  aformat: number;
  nextents: number;
  anextents: number;
  /** xfs_dev_t (sysv encoding) for device inodes. */
  dev: number;
  dataFork: Buffer;
  /** Absent when the inode has no attribute fork (di_forkoff 0). */
  attrFork?: Buffer;
}

function decodeTime(raw: Buffer, off: number, bigtime: boolean): bigint {
  if (bigtime) return raw.readBigUInt64BE(off) - BIGTIME_EPOCH_OFFSET_NS;
  return BigInt(raw.readInt32BE(off)) * NS + BigInt(raw.readInt32BE(off + 4));
}

const VALID_TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK]);

/**
 * Decodes and checks one on-disk inode (xfs_dinode_verify's checks that
 * matter to a reader). Returns undefined for a free inode (mode 0), which
 * the kernel's iget answers with ENOENT.
 */
export function parseInode(sb: Superblock, ino: number, raw: Buffer): XfsInode | undefined {
  const what = `inode ${ino}`;
  if (raw.length < sb.inodeSize) throw corrupt(what, 'short');
  if (raw.readUInt16BE(0) !== DINODE_MAGIC) throw corrupt(what, 'bad magic');
  const version = raw[4];
  if (sb.crc ? version !== 3 : version !== 1 && version !== 2) throw corrupt(what, `version ${version}`);
  if (version === 3) {
    if (!crcMatches(raw, 0, sb.inodeSize, DINODE_CRC_OFFSET)) throw corrupt(what, 'bad CRC');
    if (raw.readBigUInt64BE(152) !== BigInt(ino)) throw corrupt(what, 'records another inode number');
    if (!raw.subarray(160, 176).equals(sb.metaUuid)) throw corrupt(what, 'belongs to another filesystem (uuid)');
  }
  if (version >= 2 && raw.readUInt16BE(6) !== 0) throw corrupt(what, 'di_onlink set in a v2+ inode');
  const sizeBig = raw.readBigUInt64BE(56);
  if (sizeBig >= 1n << 63n) throw corrupt(what, 'negative size');
  if (sizeBig > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(what, `size ${sizeBig} is beyond 2^53`);
  const size = Number(sizeBig);
  const mode = raw.readUInt16BE(2);
  if (mode === 0) return undefined;
  const type = mode & S_IFMT;
  if (!VALID_TYPES.has(type)) throw corrupt(what, `mode 0${mode.toString(8)}`);
  const nlink = version === 1 ? raw.readUInt16BE(6) : raw.readUInt32BE(16);
  if ((type === S_IFLNK || type === S_IFDIR) && size === 0 && nlink !== 0) throw corrupt(what, 'empty directory or symlink');

  const flags2 = version === 3 ? Number(raw.readBigUInt64BE(120) & 0xffffffffn) : 0;
  const nrext64 = (flags2 & DiFlag2.NREXT64) !== 0;
  if (nrext64 && !(sb.incompat & Incompat.NREXT64)) throw corrupt(what, 'large extent counts without the nrext64 feature');
  const bigtime = (flags2 & DiFlag2.BIGTIME) !== 0;
  if (bigtime && !(sb.incompat & Incompat.BIGTIME)) throw corrupt(what, 'bigtime timestamps without the bigtime feature');
  let nextents: number;
  let anextents: number;
  if (nrext64) {
    const big = raw.readBigUInt64BE(24);
    if (big > 2n ** 48n) throw corrupt(what, `${big} data extents`);
    nextents = Number(big);
    anextents = raw.readUInt32BE(76);
  } else {
    nextents = raw.readUInt32BE(76);
    anextents = raw.readUInt16BE(80);
  }
  const nblocksBig = raw.readBigUInt64BE(64);
  if (nblocksBig > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(what, 'block count beyond 2^53');
  const nblocks = Number(nblocksBig);
  if (nextents + anextents > nblocks) throw corrupt(what, 'more extents than blocks');
  if (nextents + anextents === 0 && nblocks !== 0) throw corrupt(what, 'blocks without extents');

  const core = version === 3 ? V3_CORE_SIZE : V2_CORE_SIZE;
  const literal = sb.inodeSize - core;
  const forkoff = raw[82];
  const format = raw[5];
  const aformat = raw[83];
  if (forkoff) {
    if (format === ForkFormat.DEV ? forkoff !== 1 : forkoff >= literal >> 3) throw corrupt(what, `attribute fork offset ${forkoff}`);
  } else if ((aformat !== 0 && aformat !== ForkFormat.EXTENTS) || anextents !== 0) {
    throw corrupt(what, 'attribute extents without an attribute fork');
  }
  const dataSize = forkoff ? forkoff << 3 : literal;
  const dataFork = raw.subarray(core, core + dataSize);
  const attrFork = forkoff ? raw.subarray(core + dataSize, core + literal) : undefined;

  const isDev = type === S_IFCHR || type === S_IFBLK || type === S_IFIFO || type === S_IFSOCK;
  if (isDev) {
    if (format !== ForkFormat.DEV) throw corrupt(what, `special file in fork format ${format}`);
  } else {
    checkFork(what, type, format, nextents, dataFork.length, size, true);
  }
  if (attrFork) checkFork(what, type, aformat, anextents, attrFork.length, 0, false);

  return {
    ino,
    mode,
    version,
    uid: raw.readUInt32BE(8),
    gid: raw.readUInt32BE(12),
    nlink,
    size,
    nblocks,
    atimeNs: decodeTime(raw, 32, bigtime),
    mtimeNs: decodeTime(raw, 40, bigtime),
    ctimeNs: decodeTime(raw, 48, bigtime),
    crtimeNs: version === 3 ? decodeTime(raw, 144, bigtime) : undefined,
    flags: raw.readUInt16BE(90),
    flags2,
    format,
    aformat,
    nextents,
    anextents,
    dev: isDev ? raw.readUInt32BE(core) : 0,
    dataFork,
    attrFork,
  };
}

function checkFork(what: string, type: number, format: number, nextents: number, forkSize: number, size: number, data: boolean): void {
  const fork = data ? 'data fork' : 'attribute fork';
  switch (format) {
    case ForkFormat.LOCAL:
      if (data && type === S_IFREG) throw corrupt(what, 'regular file in local format');
      if (nextents !== 0) throw corrupt(what, `local ${fork} with extents`);
      if (data && size > forkSize) throw corrupt(what, `local ${fork} of ${size} bytes in ${forkSize}`);
      return;
    case ForkFormat.EXTENTS:
      if (nextents * 16 > forkSize) throw corrupt(what, `${nextents} extents do not fit the ${fork}`);
      return;
    case ForkFormat.BTREE:
      if (forkSize < 4) throw corrupt(what, `${fork} too small for a btree root`);
      return;
    default:
      throw corrupt(what, `${fork} format ${format}`);
  }
}

/** glibc dev_t (as Node's lstat reports rdev) of an xfs_dev_t: sysv 14:18 encoding, major limited to 9 bits as xfs_to_linux_dev_t. */
export function rdevOf(dev: number): number {
  const major = Math.floor(dev / 0x40000) & 0x1ff;
  const minor = dev & 0x3ffff;
  return (minor & 0xff) + (major & 0xfff) * 0x100 + Math.floor(minor / 0x100) * 0x100000 + Math.floor(major / 0x1000) * 0x1_0000_0000;
}
