import { corrupt } from './errors';

export const FileAttr = {
  READONLY: 0x0001,
  HIDDEN: 0x0002,
  SYSTEM: 0x0004,
  DIRECTORY: 0x0010,
  ARCHIVE: 0x0020,
  SPARSE: 0x0200,
  REPARSE_POINT: 0x0400,
  COMPRESSED: 0x0800,
  ENCRYPTED: 0x4000,
  RECALL_ON_OPEN: 0x00040000,
  /** In $FILE_NAME (index keys): the entry is a directory (it has an $I30 index). */
  I30_INDEX_PRESENT: 0x10000000,
} as const;

/** NTFS times are 100 ns units since 1601-01-01 (signed). */
export interface StandardInformation {
  creation: bigint;
  dataChange: bigint;
  mftChange: bigint;
  access: bigint;
  fileAttributes: number;
}

/** ntfs-3g requires the NTFS 1.x layout at least (48 bytes, up to owner_id). */
export function parseStandardInformation(v: Buffer, what: string): StandardInformation {
  if (v.length < 0x30) throw corrupt(what, `$STANDARD_INFORMATION of ${v.length} bytes`);
  return {
    creation: v.readBigInt64LE(0),
    dataChange: v.readBigInt64LE(8),
    mftChange: v.readBigInt64LE(0x10),
    access: v.readBigInt64LE(0x18),
    fileAttributes: v.readUInt32LE(0x20),
  };
}

const NTFS_TIME_OFFSET = 116444736000000000n;

/**
 * An NTFS time as nanoseconds since the epoch, as ntfs-3g's ntfs2timespec
 * renders it: seconds truncated toward zero, and a negative remainder (a
 * time before 1970 that is not a whole second) dropped.
 */
export function ntfsTimeToNs(t: bigint): bigint {
  const rel = t - NTFS_TIME_OFFSET;
  const sec = rel / 10_000_000n;
  let nsec = (rel - sec * 10_000_000n) * 100n;
  if (nsec < 0n || nsec > 999_999_999n) nsec = 0n;
  return sec * 1_000_000_000n + nsec;
}
