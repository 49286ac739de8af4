import { corrupt } from './errors';

const POSIX_ACL_XATTR_VERSION = 2;
const ACL_UNDEFINED_ID = 0xffffffff;
const ACL_USER_OBJ = 0x01;
const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;
const XFS_ACL_ENTRY = 12;
const XATTR_SIZE_MAX = 65536;

/**
 * XFS keeps POSIX ACLs big-endian (xfs_acl: a 32-bit count, then 12-byte
 * entries of tag, id and permissions); getxattr(2) of system.posix_acl_*
 * returns the VFS form (version 2, little-endian 8-byte entries, ids only
 * for named users and groups), which is what xfs_acl_from_disk followed by
 * posix_acl_to_xattr produces.
 */
export function aclFromDisk(disk: Buffer, crc: boolean, what: string): Buffer {
  if (disk.length < 4) throw corrupt(what, 'ACL is truncated');
  const count = disk.readUInt32BE(0);
  const max = crc ? Math.floor((XATTR_SIZE_MAX - 4) / XFS_ACL_ENTRY) : 25;
  if (count > max || 4 + count * XFS_ACL_ENTRY !== disk.length) throw corrupt(what, `ACL of ${count} entries in ${disk.length} bytes`);
  const out = Buffer.alloc(4 + count * 8);
  out.writeUInt32LE(POSIX_ACL_XATTR_VERSION, 0);
  for (let i = 0; i < count; i++) {
    const at = 4 + i * XFS_ACL_ENTRY;
    const tag = disk.readUInt32BE(at);
    let id = ACL_UNDEFINED_ID;
    if (tag === ACL_USER || tag === ACL_GROUP) id = disk.readUInt32BE(at + 4);
    else if (tag !== ACL_USER_OBJ && tag !== ACL_GROUP_OBJ && tag !== ACL_MASK && tag !== ACL_OTHER) {
      throw corrupt(what, `ACL entry has unknown tag 0x${tag.toString(16)}`);
    }
    out.writeUInt16LE(tag, 4 + i * 8);
    out.writeUInt16LE(disk.readUInt16BE(at + 8), 6 + i * 8);
    out.writeUInt32LE(id, 8 + i * 8);
  }
  return out;
}
