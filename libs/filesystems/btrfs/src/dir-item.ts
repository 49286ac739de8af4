import type { FileType } from '@strata/filesystem';
import { corrupt, need } from './errors';
import { KEY_SIZE, readKey, type Key } from './key';

/** struct btrfs_dir_item (DIR_ITEM, DIR_INDEX and XATTR_ITEM share it): several may be packed in one item. */
export interface DirItem {
  location: Key;
  type: number;
  name: Buffer;
  data: Buffer;
}

const DIR_ITEM_HEADER = KEY_SIZE + 8 + 2 + 2 + 1;
const MAX_ENTRIES = 1 << 16;

export function parseDirItems(buf: Buffer, what: string): DirItem[] {
  const out: DirItem[] = [];
  let at = 0;
  while (at < buf.length) {
    if (out.length >= MAX_ENTRIES) throw corrupt(`${what}: too many packed entries`);
    need(buf, at, DIR_ITEM_HEADER, what);
    const location = readKey(buf, at);
    const dataLen = buf.readUInt16LE(at + KEY_SIZE + 8);
    const nameLen = buf.readUInt16LE(at + KEY_SIZE + 10);
    const type = buf[at + KEY_SIZE + 12];
    at += DIR_ITEM_HEADER;
    need(buf, at, nameLen + dataLen, `${what} name and data`);
    if (nameLen === 0) throw corrupt(`${what}: empty name`);
    out.push({ location, type, name: buf.subarray(at, at + nameLen), data: buf.subarray(at + nameLen, at + nameLen + dataLen) });
    at += nameLen + dataLen;
  }
  return out;
}

/** BTRFS_FT_* → the seam's file type. */
export function dirTypeName(t: number): FileType {
  switch (t) {
    case 1:
      return 'file';
    case 2:
      return 'dir';
    case 3:
      return 'char';
    case 4:
      return 'block';
    case 5:
      return 'fifo';
    case 6:
      return 'socket';
    case 7:
      return 'symlink';
    default:
      return 'unknown';
  }
}
