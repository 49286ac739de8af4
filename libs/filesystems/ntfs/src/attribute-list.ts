import { corrupt } from './errors';

export interface AttrListEntry {
  type: number;
  name: Buffer;
  lowestVcn: number;
  record: number;
  instance: number;
}

/** ntfs-3g refuses attribute lists larger than this. */
export const MAX_ATTRIBUTE_LIST = 0x40000;

/** Parses an $ATTRIBUTE_LIST value: where each attribute (extent) of a file lives. */
export function parseAttributeList(buf: Buffer, what: string): AttrListEntry[] {
  if (buf.length > MAX_ATTRIBUTE_LIST) throw corrupt(what, `${buf.length} bytes`);
  const out: AttrListEntry[] = [];
  let at = 0;
  while (at + 0x1a <= buf.length) {
    const type = buf.readUInt32LE(at);
    const length = buf.readUInt16LE(at + 4);
    const nameLength = buf[at + 6];
    const nameOffset = buf[at + 7];
    if (length < 0x1a || at + length > buf.length) throw corrupt(what, `entry of length ${length} at ${at}`);
    if (nameLength > 0 && nameOffset + nameLength * 2 > length) throw corrupt(what, `entry name at ${at} runs past the entry`);
    const lowestVcn = Number(buf.readBigInt64LE(at + 8));
    const record = Number(buf.readBigUInt64LE(at + 0x10) & 0xffffffffffffn);
    if (!Number.isSafeInteger(lowestVcn) || lowestVcn < 0) throw corrupt(what, `entry at ${at} starts at VCN ${lowestVcn}`);
    out.push({ type, name: Buffer.from(buf.subarray(at + nameOffset, at + nameOffset + nameLength * 2)), lowestVcn, record, instance: buf.readUInt16LE(at + 0x18) });
    at += length;
  }
  return out;
}
