import { corrupt } from './corruption';
import { crc32c, crc32cU64 } from './crc32c';
import { GOOD_OLD_INODE_SIZE, InodeRecord } from './inode';

export const XATTR_MAGIC = 0xea020000;
const BLOCK_HEADER = 32;
const ENTRY_HEADER = 16;
/** XATTR_SIZE_MAX: no value the kernel hands out is larger. */
export const XATTR_SIZE_MAX = 65536;

export const XattrIndex = {
  USER: 1,
  POSIX_ACL_ACCESS: 2,
  POSIX_ACL_DEFAULT: 3,
  TRUSTED: 4,
  SECURITY: 6,
  SYSTEM: 7,
} as const;

/** listxattr prefixes of the name indexes the kernel has handlers for; others are never listed. */
const PREFIXES: Record<number, string> = {
  [XattrIndex.USER]: 'user.',
  [XattrIndex.POSIX_ACL_ACCESS]: 'system.posix_acl_access',
  [XattrIndex.POSIX_ACL_DEFAULT]: 'system.posix_acl_default',
  [XattrIndex.TRUSTED]: 'trusted.',
  [XattrIndex.SECURITY]: 'security.',
  10: 'gnu.',
};

export function xattrPrefix(index: number): string | undefined {
  return PREFIXES[index];
}

export interface XattrEntry {
  index: number;
  name: Buffer;
  /** The value when stored in the same inode or block. */
  value: Buffer | undefined;
  /** ea_inode: the inode holding the value. */
  valueInum: number;
  valueSize: number;
}

/**
 * Parses the entry list in buf[entriesStart, end); value offsets count from
 * `valueBase`. Every name and value must lie inside the region and values
 * must not overlap the entry list, as the kernel's check_xattrs demands.
 */
function parseEntries(buf: Buffer, entriesStart: number, valueBase: number, end: number, what: string): XattrEntry[] {
  const out: XattrEntry[] = [];
  let off = entriesStart;
  for (;;) {
    if (off + 4 > end) throw corrupt(what, 'xattr entries run past the end');
    if (buf.readUInt32LE(off) === 0) break;
    if (off + ENTRY_HEADER > end) throw corrupt(what, 'xattr entry header is truncated');
    const nameLen = buf.readUInt8(off);
    const index = buf.readUInt8(off + 1);
    const valueOffs = buf.readUInt16LE(off + 2);
    const valueInum = buf.readUInt32LE(off + 4);
    const valueSize = buf.readUInt32LE(off + 8);
    const size = (ENTRY_HEADER + nameLen + 3) & ~3;
    if (off + size > end) throw corrupt(what, 'xattr name runs past the end');
    out.push({ index, name: Buffer.from(buf.subarray(off + ENTRY_HEADER, off + ENTRY_HEADER + nameLen)), value: undefined, valueInum, valueSize });
    const entry = out[out.length - 1];
    if (valueSize > XATTR_SIZE_MAX) throw corrupt(what, `xattr value of ${valueSize} bytes is too large`);
    if (valueInum === 0) {
      const vs = valueBase + valueOffs;
      // Values grow down from the end of the region: one starting inside the entry list is corrupt.
      if (valueSize > 0 && (vs < off + size || vs + valueSize > end)) throw corrupt(what, 'xattr value lies outside its region');
      entry.value = Buffer.from(buf.subarray(vs, vs + valueSize));
    }
    off += size;
  }
  return out;
}

/** The xattrs stored in the inode body after i_extra_isize. */
export function inodeXattrs(inode: InodeRecord, inodeSize: number): XattrEntry[] {
  const start = GOOD_OLD_INODE_SIZE + inode.extraIsize;
  if (inodeSize <= GOOD_OLD_INODE_SIZE || start + 4 > inodeSize) return [];
  if (inode.raw.readUInt32LE(start) !== XATTR_MAGIC) return [];
  return parseEntries(inode.raw, start + 4, start + 4, inodeSize, `in-inode xattrs of inode ${inode.stat.ino}`);
}

export function verifyXattrBlock(block: Buffer, blockNr: number, fsSeed: number): string | undefined {
  const want = block.readUInt32LE(0x10);
  let c = crc32cU64(fsSeed, blockNr);
  c = crc32c(c, block, 0, 0x10);
  c = crc32c(c, Buffer.alloc(4));
  c = crc32c(c, block, 0x14, block.length);
  return want === c ? undefined : `checksum mismatch (stored 0x${want.toString(16)}, computed 0x${c.toString(16)})`;
}

/** The xattrs of an external xattr block (i_file_acl). */
export function blockXattrs(block: Buffer, blockNr: number): XattrEntry[] {
  const what = `xattr block ${blockNr}`;
  if (block.readUInt32LE(0) !== XATTR_MAGIC) throw corrupt(what, 'bad magic');
  if (block.readUInt32LE(8) !== 1) throw corrupt(what, `h_blocks ${block.readUInt32LE(8)} is not 1`);
  return parseEntries(block, BLOCK_HEADER, 0, block.length, what);
}
