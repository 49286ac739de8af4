import { corrupt } from './corruption';

const EXT4_ACL_VERSION = 1;
const POSIX_ACL_XATTR_VERSION = 2;
const ACL_UNDEFINED_ID = 0xffffffff;

const ACL_USER_OBJ = 0x01;
const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;

/**
 * ext4 stores ACLs compactly (version 1; 4-byte entries for the owner,
 * group, mask and other, 8-byte ones with an id for named users and groups);
 * getxattr(2) returns the VFS form (version 2, every entry 8 bytes).
 */
export function aclFromDisk(disk: Buffer, what: string): Buffer {
  if (disk.length < 4 || disk.readUInt32LE(0) !== EXT4_ACL_VERSION) throw corrupt(what, 'ACL has a bad header');
  const entries: Buffer[] = [];
  let off = 4;
  while (off < disk.length) {
    if (disk.length - off < 4) throw corrupt(what, 'ACL entry is truncated');
    const tag = disk.readUInt16LE(off);
    const perm = disk.readUInt16LE(off + 2);
    let id = ACL_UNDEFINED_ID;
    if (tag === ACL_USER || tag === ACL_GROUP) {
      if (disk.length - off < 8) throw corrupt(what, 'ACL entry is truncated');
      id = disk.readUInt32LE(off + 4);
      off += 8;
    } else if (tag === ACL_USER_OBJ || tag === ACL_GROUP_OBJ || tag === ACL_MASK || tag === ACL_OTHER) {
      off += 4;
    } else {
      throw corrupt(what, `ACL entry has unknown tag 0x${tag.toString(16)}`);
    }
    const e = Buffer.alloc(8);
    e.writeUInt16LE(tag, 0);
    e.writeUInt16LE(perm, 2);
    e.writeUInt32LE(id, 4);
    entries.push(e);
  }
  const header = Buffer.alloc(4);
  header.writeUInt32LE(POSIX_ACL_XATTR_VERSION);
  return Buffer.concat([header, ...entries]);
}
