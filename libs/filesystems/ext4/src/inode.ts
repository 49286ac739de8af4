import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '@strata/posix';
import { corrupt } from './corruption';
import { crc32c, crc32cZeros } from './crc32c';
import { decodeDevice, makedev } from './device-number';
import { Incompat, RoCompat } from './features';
import { Superblock, hasIncompat, hasMetadataCsum, hasRoCompat } from './superblock';
import type { Ext4Inode } from './types';

export const GOOD_OLD_INODE_SIZE = 128;

export const InodeFlag = {
  SECRM: 0x1,
  COMPR: 0x4,
  IMMUTABLE: 0x10,
  APPEND: 0x20,
  ENCRYPT: 0x800,
  INDEX: 0x1000,
  HUGE_FILE: 0x40000,
  EXTENTS: 0x80000,
  EA_INODE: 0x200000,
  INLINE_DATA: 0x10000000,
} as const;

/** An inode as read from disk: the public view plus what the other modules need. */
export interface InodeRecord {
  stat: Ext4Inode;
  /** The 60 bytes of i_block: block map, extent root, fast symlink or inline data. */
  iBlock: Buffer;
  /** The whole on-disk inode (s_inode_size bytes). */
  raw: Buffer;
  extraIsize: number;
  fileAcl: number;
  /** The inode's checksum seed (uuid, inode number, generation): extents, directory blocks. */
  csumSeed: number;
}

/** Whether the on-disk field [offset, offset+size) lies inside the inode's extra space. */
function fits(extraIsize: number, offset: number, size: number): boolean {
  return offset + size <= GOOD_OLD_INODE_SIZE + extraIsize;
}

const NS_PER_SEC = 1_000_000_000n;

function decodeTime(raw: Buffer, secOffset: number, extraOffset: number, extraIsize: number): bigint {
  let sec = raw.readInt32LE(secOffset);
  let nsec = 0;
  if (fits(extraIsize, extraOffset, 4)) {
    const extra = raw.readUInt32LE(extraOffset);
    // The two epoch bits extend the signed 32-bit seconds past 2038 (|sec| < 2^34: exact as a number).
    sec += (extra & 3) * 0x1_0000_0000;
    nsec = extra >>> 2;
  }
  // Four inode times decoded per entry of a walk: two BigInts each, not seven.
  const ns = BigInt(sec) * NS_PER_SEC;
  return nsec === 0 ? ns : ns + BigInt(nsec);
}

/** crc32c of a little-endian u32, into a buffer of its own (crc32cU32 allocates one per call; a walk seeds two per inode). */
const u32Scratch = Buffer.alloc(4);
function crcOfU32(crc: number, value: number): number {
  u32Scratch.writeUInt32LE(value >>> 0);
  return crc32c(crc, u32Scratch);
}

export function inodeChecksum(sb: Superblock, raw: Buffer, csumSeed: number, extraIsize: number): number {
  let c = crc32c(csumSeed, raw, 0, 0x7c);
  c = crc32cZeros(c, 2);
  c = crc32c(c, raw, 0x7e, GOOD_OLD_INODE_SIZE);
  if (sb.inodeSize > GOOD_OLD_INODE_SIZE) {
    c = crc32c(c, raw, GOOD_OLD_INODE_SIZE, 0x82);
    let offset = 0x82;
    if (fits(extraIsize, 0x82, 2)) {
      c = crc32cZeros(c, 2);
      offset += 2;
    }
    c = crc32c(c, raw, offset, sb.inodeSize);
  }
  return c;
}

/** Verifies the inode checksum; returns the reason when it does not match. */
export function verifyInodeChecksum(sb: Superblock, raw: Buffer, csumSeed: number, extraIsize: number): string | undefined {
  if (!hasMetadataCsum(sb) || sb.creatorOs !== 0) return undefined;
  let stored = raw.readUInt16LE(0x7c);
  let computed = inodeChecksum(sb, raw, csumSeed, extraIsize);
  if (sb.inodeSize > GOOD_OLD_INODE_SIZE && fits(extraIsize, 0x82, 2)) stored = (stored | (raw.readUInt16LE(0x82) << 16)) >>> 0;
  else computed &= 0xffff;
  if (stored === computed) return undefined;
  return `checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)})`;
}

/**
 * Decodes one on-disk inode. Rejects what the kernel's iget rejects (bad
 * extra_isize, negative size, unused inode) so that callers only ever see
 * inodes the kernel would also have opened.
 */
export function parseInode(sb: Superblock, ino: number, raw: Buffer): InodeRecord {
  const what = `inode ${ino}`;
  const mode = raw.readUInt16LE(0x0);
  const nlink = raw.readUInt16LE(0x1a);
  if (nlink === 0) throw corrupt(what, 'unused (deleted) inode');
  let extraIsize = 0;
  if (sb.inodeSize > GOOD_OLD_INODE_SIZE) {
    extraIsize = raw.readUInt16LE(0x80);
    if (GOOD_OLD_INODE_SIZE + extraIsize > sb.inodeSize || extraIsize % 4 !== 0) {
      throw corrupt(what, `bad extra_isize ${extraIsize}`);
    }
  }
  const generation = raw.readUInt32LE(0x64);
  let csumSeed = 0;
  if (hasMetadataCsum(sb)) csumSeed = crcOfU32(crcOfU32(sb.checksumSeed, ino), generation);

  // ext4_isize(): i_size_high counts only for regular files, or for every inode with large_dir.
  const sizeHigh = (mode & S_IFMT) === S_IFREG || hasIncompat(sb, Incompat.LARGEDIR) ? raw.readUInt32LE(0x6c) : 0;
  if (sizeHigh >= 0x200000) throw corrupt(what, `size 0x${sizeHigh.toString(16)}xxxxxxxx is negative or beyond 2^53`);
  const size = sizeHigh * 0x1_0000_0000 + raw.readUInt32LE(0x4);

  const flags = raw.readUInt32LE(0x20);
  const blocksLo = raw.readUInt32LE(0x1c);
  const hugeFile = hasRoCompat(sb, RoCompat.HUGE_FILE);
  let blocks = hugeFile ? raw.readUInt16LE(0x74) * 0x1_0000_0000 + blocksLo : blocksLo;
  if (hugeFile && flags & InodeFlag.HUGE_FILE) blocks *= sb.blockSize / 512;
  // The kernel's getattr of regular files reports inline data as the sectors it would fill, so tools do not think the file sparse.
  if (flags & InodeFlag.INLINE_DATA && (mode & S_IFMT) === S_IFREG) blocks += Math.ceil(size / 512);

  const iBlock = Buffer.from(raw.subarray(0x28, 0x28 + 60));
  let rdev = 0;
  const type = mode & S_IFMT;
  if (type === S_IFCHR || type === S_IFBLK) {
    const d = decodeDevice(iBlock.readUInt32LE(0), iBlock.readUInt32LE(4));
    rdev = makedev(d.major, d.minor);
  }
  if ((flags & InodeFlag.EXTENTS) !== 0 && (flags & InodeFlag.INLINE_DATA) !== 0) {
    throw corrupt(what, 'both extents and inline data flags are set');
  }
  if ((flags & InodeFlag.INLINE_DATA) !== 0 && !hasIncompat(sb, Incompat.INLINE_DATA)) {
    throw corrupt(what, 'inline data flag without the inline_data feature');
  }
  if (type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK && type !== S_IFCHR && type !== S_IFBLK && type !== 0o010000 && type !== 0o140000) {
    throw corrupt(what, `invalid file type in mode 0${mode.toString(8)}`);
  }

  const fileAclHigh = hasIncompat(sb, Incompat.BIT64) ? raw.readUInt16LE(0x76) : 0;
  const stat: Ext4Inode = {
    ino,
    mode,
    uid: (raw.readUInt16LE(0x78) * 0x10000 + raw.readUInt16LE(0x2)) >>> 0,
    gid: (raw.readUInt16LE(0x7a) * 0x10000 + raw.readUInt16LE(0x18)) >>> 0,
    nlink,
    size,
    rdev,
    blocks,
    atimeNs: decodeTime(raw, 0x8, 0x8c, extraIsize),
    mtimeNs: decodeTime(raw, 0x10, 0x88, extraIsize),
    ctimeNs: decodeTime(raw, 0xc, 0x84, extraIsize),
    crtimeNs: fits(extraIsize, 0x90, 4) ? decodeTime(raw, 0x90, 0x94, extraIsize) : undefined,
    flags,
    generation,
  };
  return {
    stat,
    iBlock,
    raw,
    extraIsize,
    fileAcl: fileAclHigh * 0x1_0000_0000 + raw.readUInt32LE(0x68),
    csumSeed,
  };
}
