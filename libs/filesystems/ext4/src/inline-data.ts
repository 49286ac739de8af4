import { corrupt } from './corruption';
import { InodeRecord } from './inode';
import { XattrIndex, inodeXattrs } from './xattr';

export const INLINE_IBLOCK_SIZE = 60;

/** The part of inline data that overflows i_block: the in-inode "system.data" xattr. */
export function inlineOverflow(inode: InodeRecord, inodeSize: number): Buffer {
  const e = inodeXattrs(inode, inodeSize).find((x) => x.index === XattrIndex.SYSTEM && x.name.toString('latin1') === 'data');
  if (!e) throw corrupt(`inode ${inode.stat.ino}`, 'inline data without its system.data xattr');
  if (!e.value) throw corrupt(`inode ${inode.stat.ino}`, 'inline data stored in an ea_inode');
  return e.value;
}

/** All inline bytes: i_block followed by the system.data value. */
export function inlineBytes(inode: InodeRecord, inodeSize: number): Buffer {
  return Buffer.concat([inode.iBlock, inlineOverflow(inode, inodeSize)]);
}
