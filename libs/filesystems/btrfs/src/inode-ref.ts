import { corrupt, need } from './errors';

/** One name of an inode in a parent directory (INODE_REF or INODE_EXTREF). */
export interface InodeRef {
  parent: bigint;
  index: bigint;
  name: Buffer;
}

const MAX_REFS = 1 << 16;

/** INODE_REF items: key offset is the parent; the item packs (index, name_len, name) entries. */
export function parseInodeRefs(buf: Buffer, parent: bigint): InodeRef[] {
  const out: InodeRef[] = [];
  for (let at = 0; at < buf.length; ) {
    if (out.length >= MAX_REFS) throw corrupt('inode ref: too many names');
    need(buf, at, 10, 'inode ref');
    const index = buf.readBigUInt64LE(at);
    const len = buf.readUInt16LE(at + 8);
    need(buf, at + 10, len, 'inode ref name');
    out.push({ parent, index, name: buf.subarray(at + 10, at + 10 + len) });
    at += 10 + len;
  }
  return out;
}

/** INODE_EXTREF items: each entry carries its own parent. */
export function parseInodeExtrefs(buf: Buffer): InodeRef[] {
  const out: InodeRef[] = [];
  for (let at = 0; at < buf.length; ) {
    if (out.length >= MAX_REFS) throw corrupt('inode extref: too many names');
    need(buf, at, 18, 'inode extref');
    const parent = buf.readBigUInt64LE(at);
    const index = buf.readBigUInt64LE(at + 8);
    const len = buf.readUInt16LE(at + 16);
    need(buf, at + 18, len, 'inode extref name');
    out.push({ parent, index, name: buf.subarray(at + 18, at + 18 + len) });
    at += 18 + len;
  }
  return out;
}
