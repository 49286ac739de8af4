import { AttrEntry, AttrFlag, XATTR_SIZE_MAX } from './attr-entry';
import { corrupt } from './errors';
import type { Superblock } from './superblock';

/** The entries of one attribute leaf block (xfs_attr_leafblock / xfs_attr3_leafblock), header already checked. */
export function parseAttrLeaf(sb: Superblock, buf: Buffer, what: string): AttrEntry[] {
  const hdr = sb.crc ? 80 : 32;
  const count = buf.readUInt16BE(sb.crc ? 56 : 12);
  if (hdr + count * 8 > buf.length) throw corrupt(what, `${count} entries overrun the block`);
  const out: AttrEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = hdr + i * 8;
    const nameidx = buf.readUInt16BE(at + 4);
    const flags = buf[at + 6];
    if (nameidx < hdr + count * 8 || nameidx >= buf.length) throw corrupt(what, `entry ${i} name index ${nameidx}`);
    if (flags & AttrFlag.LOCAL) {
      if (nameidx + 3 > buf.length) throw corrupt(what, `entry ${i} is truncated`);
      const valuelen = buf.readUInt16BE(nameidx);
      const namelen = buf[nameidx + 2];
      const nameAt = nameidx + 3;
      if (namelen === 0 || nameAt + namelen + valuelen > buf.length) throw corrupt(what, `entry ${i} overruns the block`);
      out.push({
        flags,
        name: Buffer.from(buf.subarray(nameAt, nameAt + namelen)),
        value: Buffer.from(buf.subarray(nameAt + namelen, nameAt + namelen + valuelen)),
        valueLength: valuelen,
      });
    } else {
      if (nameidx + 9 > buf.length) throw corrupt(what, `entry ${i} is truncated`);
      const remoteBlock = buf.readUInt32BE(nameidx);
      const valuelen = buf.readUInt32BE(nameidx + 4);
      const namelen = buf[nameidx + 8];
      if (namelen === 0 || nameidx + 9 + namelen > buf.length) throw corrupt(what, `entry ${i} overruns the block`);
      if (valuelen > XATTR_SIZE_MAX) throw corrupt(what, `entry ${i} has a ${valuelen}-byte value`);
      out.push({ flags, name: Buffer.from(buf.subarray(nameidx + 9, nameidx + 9 + namelen)), remoteBlock, valueLength: valuelen });
    }
  }
  return out;
}
