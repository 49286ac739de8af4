import { Attribute, AttrType, parseAttribute } from './attribute';
import { corrupt } from './errors';
import { applyFixups } from './fixup';

export const RecordFlag = {
  IN_USE: 0x0001,
  DIRECTORY: 0x0002,
} as const;

export interface MftRecord {
  number: number;
  sequence: number;
  linkCount: number;
  flags: number;
  /** Record number of the base record; 0 for a base record. */
  baseRecord: number;
  attributes: Attribute[];
}

/** Decodes one raw MFT record of `number` (fixups applied here; a torn record is EUCLEAN for it alone). */
export function parseMftRecord(raw: Buffer, number: number, clusters: number): MftRecord {
  const what = `MFT record ${number}`;
  const magic = raw.toString('latin1', 0, 4);
  if (magic === 'BAAD') throw corrupt(what, 'marked bad (BAAD) by chkdsk');
  if (magic !== 'FILE') throw corrupt(what, `magic ${JSON.stringify(magic)} is not FILE`);
  const rec = applyFixups(raw, what);
  const sequence = rec.readUInt16LE(0x10);
  const linkCount = rec.readUInt16LE(0x12);
  const attrsOffset = rec.readUInt16LE(0x14);
  const flags = rec.readUInt16LE(0x16);
  const bytesInUse = rec.readUInt32LE(0x18);
  const bytesAllocated = rec.readUInt32LE(0x1c);
  const base = rec.readBigUInt64LE(0x20) & 0xffffffffffffn;
  if (bytesAllocated !== rec.length || bytesInUse > rec.length || bytesInUse < attrsOffset + 4 || attrsOffset < 0x18 || (attrsOffset & 7) !== 0) {
    throw corrupt(what, `header: attributes at ${attrsOffset}, ${bytesInUse} of ${bytesAllocated} bytes in use in a ${rec.length}-byte record`);
  }
  const attributes: Attribute[] = [];
  let at = attrsOffset;
  for (let n = 0; ; n++) {
    if (at + 4 > bytesInUse || n > rec.length / 16) throw corrupt(what, 'attribute list not terminated');
    if (rec.readUInt32LE(at) === AttrType.END) break;
    const { attr, length } = parseAttribute(rec, at, bytesInUse, clusters, what);
    attributes.push(attr);
    at += length;
  }
  return { number, sequence, linkCount, flags, baseRecord: Number(base), attributes };
}
