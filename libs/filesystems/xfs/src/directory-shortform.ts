import { corrupt } from './errors';
import { DirEntry, entryIno, fileTypeOf } from './directory-entry';

/**
 * A directory stored in the inode's data fork (xfs_dir2_sf): a header with
 * the entry count, the count of 8-byte inode numbers and the parent, then
 * packed entries (length, offset, name, file type with ftype, inode number).
 */
export function parseShortformDir(fork: Buffer, size: number, ftype: boolean, what: string): { entries: DirEntry[]; parent: number } {
  if (size < 6 || size > fork.length) throw corrupt(what, `shortform size ${size}`);
  const buf = fork.subarray(0, size);
  const count = buf[0];
  const i8count = buf[1];
  const inoSize = i8count ? 8 : 4;
  if (i8count > count) throw corrupt(what, 'more 8-byte inode numbers than entries');
  const parent = inoSize === 8 ? entryIno(buf.readBigUInt64BE(2)) : buf.readUInt32BE(2);
  let pos = 2 + inoSize;
  const out: DirEntry[] = [];
  let wide = 0;
  for (let i = 0; i < count; i++) {
    if (pos + 3 > size) throw corrupt(what, `shortform entry ${i} is truncated`);
    const namelen = buf[pos];
    if (namelen === 0) throw corrupt(what, `shortform entry ${i} has an empty name`);
    const nameAt = pos + 3;
    const typeAt = nameAt + namelen;
    const inoAt = typeAt + (ftype ? 1 : 0);
    const next = inoAt + inoSize;
    if (next > size) throw corrupt(what, `shortform entry ${i} is truncated`);
    const ino = inoSize === 8 ? entryIno(buf.readBigUInt64BE(inoAt)) : buf.readUInt32BE(inoAt);
    if (inoSize === 8 && ino > 0xffffffff) wide++;
    const name = Buffer.from(buf.subarray(nameAt, typeAt));
    if (name.includes(0x2f) || name.includes(0)) throw corrupt(what, `shortform entry ${i} has an invalid name`);
    out.push({ name, ino, type: ftype ? fileTypeOf(buf[typeAt]) : 'unknown' });
    pos = next;
  }
  if (pos !== size) throw corrupt(what, `shortform entries end at ${pos}, size is ${size}`);
  if (wide > i8count) throw corrupt(what, 'wide inode numbers not counted');
  return { entries: out, parent };
}
