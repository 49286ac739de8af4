import { StrataError } from '@strata/errors';
import { corrupt, readInt64 } from './errors';
import { Run, decodeRunlist } from './runlist';

export const AttrType = {
  STANDARD_INFORMATION: 0x10,
  ATTRIBUTE_LIST: 0x20,
  FILE_NAME: 0x30,
  VOLUME_NAME: 0x60,
  VOLUME_INFORMATION: 0x70,
  DATA: 0x80,
  INDEX_ROOT: 0x90,
  INDEX_ALLOCATION: 0xa0,
  BITMAP: 0xb0,
  REPARSE_POINT: 0xc0,
  EA_INFORMATION: 0xd0,
  EA: 0xe0,
  END: 0xffffffff,
} as const;

export const AttrFlag = {
  COMPRESSION_MASK: 0x00ff,
  COMPRESSED: 0x0001,
  ENCRYPTED: 0x4000,
  SPARSE: 0x8000,
} as const;

export interface NonResident {
  lowestVcn: number;
  highestVcn: number;
  compressionUnit: number;
  allocatedSize: number;
  dataSize: number;
  initializedSize: number;
  /** Present for compressed and sparse attributes (clusters actually allocated, in bytes). */
  compressedSize: number | undefined;
  runs: Run[];
  /** Why the mapping pairs could not be decoded: reading this attribute fails with it, the rest of the file stays readable. */
  runsError?: StrataError;
}

/** One attribute record (one extent of a non-resident attribute). */
export interface Attribute {
  type: number;
  /** UTF-16LE name as stored (empty for unnamed). */
  name: Buffer;
  flags: number;
  instance: number;
  /** The resident value. */
  value?: Buffer;
  nonResident?: NonResident;
}

/** Parses one attribute record at `at` of a (fixed-up) MFT record; `length` is its declared length. */
export function parseAttribute(rec: Buffer, at: number, end: number, clusters: number, what: string): { attr: Attribute; length: number } {
  if (at + 16 > end) throw corrupt(what, `attribute header at ${at} runs past the record`);
  const type = rec.readUInt32LE(at);
  const length = rec.readUInt32LE(at + 4);
  if (length < 24 || (length & 7) !== 0 || at + length > end) throw corrupt(what, `attribute 0x${type.toString(16)} of length ${length} at ${at}`);
  const nonResident = rec[at + 8];
  const nameLength = rec[at + 9];
  const nameOffset = rec.readUInt16LE(at + 10);
  const flags = rec.readUInt16LE(at + 12);
  const instance = rec.readUInt16LE(at + 14);
  if (nameLength > 0 && nameOffset + nameLength * 2 > length) throw corrupt(what, `attribute 0x${type.toString(16)} name runs past the attribute`);
  const name = Buffer.from(rec.subarray(at + nameOffset, at + nameOffset + nameLength * 2));
  if (nonResident === 0) {
    const valueLength = rec.readUInt32LE(at + 16);
    const valueOffset = rec.readUInt16LE(at + 20);
    if (valueOffset + valueLength > length) throw corrupt(what, `resident attribute 0x${type.toString(16)} value (${valueLength} at ${valueOffset}) runs past the attribute`);
    return { attr: { type, name, flags, instance, value: Buffer.from(rec.subarray(at + valueOffset, at + valueOffset + valueLength)) }, length };
  }
  if (length < 0x40) throw corrupt(what, `non-resident attribute 0x${type.toString(16)} of length ${length}`);
  const lowestVcn = readInt64(rec, at + 0x10, what);
  const highestVcn = readInt64(rec, at + 0x18, what);
  const pairsOffset = rec.readUInt16LE(at + 0x20);
  const compressionUnit = rec[at + 0x22];
  const allocatedSize = readInt64(rec, at + 0x28, what);
  const dataSize = readInt64(rec, at + 0x30, what);
  const initializedSize = readInt64(rec, at + 0x38, what);
  const hasCompressedSize = (flags & (AttrFlag.COMPRESSION_MASK | AttrFlag.SPARSE)) !== 0 && length >= 0x48;
  const compressedSize = hasCompressedSize ? readInt64(rec, at + 0x40, what) : undefined;
  if (lowestVcn < 0 || highestVcn < lowestVcn - 1 || allocatedSize < 0 || dataSize < 0 || initializedSize < 0 || (compressedSize ?? 0) < 0) {
    throw corrupt(what, `non-resident attribute 0x${type.toString(16)} with VCNs ${lowestVcn}..${highestVcn}, sizes ${allocatedSize}/${dataSize}/${initializedSize}`);
  }
  if (pairsOffset < 0x40 || pairsOffset > length) throw corrupt(what, `mapping pairs at ${pairsOffset} outside the attribute`);
  let runs: Run[] = [];
  let runsError: StrataError | undefined;
  try {
    runs = decodeRunlist(rec, at + pairsOffset, at + length, lowestVcn, highestVcn, clusters, `${what} runlist of attribute 0x${type.toString(16)}`);
  } catch (err) {
    if (!(err instanceof StrataError)) throw err;
    runsError = err;
  }
  return {
    attr: { type, name, flags, instance, nonResident: { lowestVcn, highestVcn, compressionUnit, allocatedSize, dataSize, initializedSize, compressedSize, runs, runsError } },
    length,
  };
}

export function sameName(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.equals(b);
}
