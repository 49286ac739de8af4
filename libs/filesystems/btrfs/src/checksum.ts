import { createHash } from 'node:crypto';
import { crc32c } from '@strata/filesystem';
import { CsumType } from './constants';
import { unsupported } from './errors';

/** The checksum algorithm a filesystem uses for its metadata and data. */
export interface Checksummer {
  readonly name: string;
  /** Bytes of the checksum as stored (the rest of the 32-byte field is zero). */
  readonly size: number;
  compute(data: Buffer, start?: number, end?: number): Buffer;
}

const crc32cSum: Checksummer = {
  name: 'crc32c',
  size: 4,
  compute(data, start = 0, end = data.length) {
    const out = Buffer.alloc(4);
    out.writeUInt32LE((~crc32c(0xffffffff, data, start, end)) >>> 0);
    return out;
  },
};

const sha256Sum: Checksummer = {
  name: 'sha256',
  size: 32,
  compute(data, start = 0, end = data.length) {
    return createHash('sha256').update(data.subarray(start, end)).digest();
  },
};

/** The checksummer of superblock csum_type, or EOPNOTSUPP naming the algorithm. */
export function checksummerFor(csumType: number): Checksummer {
  switch (csumType) {
    case CsumType.CRC32C:
      return crc32cSum;
    case CsumType.SHA256:
      return sha256Sum;
    case CsumType.XXHASH64:
      throw unsupported('checksum algorithm xxhash64 is not supported');
    case CsumType.BLAKE2B:
      throw unsupported('checksum algorithm blake2b is not supported');
    default:
      throw unsupported(`unknown checksum algorithm ${csumType}`);
  }
}

/** Whether `stored` (the block's leading csum field) matches the checksum of data[start, end). */
export function checksumMatches(sum: Checksummer, stored: Buffer, data: Buffer, start: number, end: number): boolean {
  return sum.compute(data, start, end).equals(stored.subarray(0, sum.size));
}
