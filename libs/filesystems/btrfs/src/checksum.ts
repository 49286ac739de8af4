import { createHash } from 'node:crypto';
import { blake2b } from 'blakejs';
import { crc32cSliced } from './crc32c-sliced';
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
    out.writeUInt32LE(~crc32cSliced(0xffffffff, data, start, end) >>> 0);
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

const blake2bSum: Checksummer = {
  name: 'blake2b',
  size: 32,
  compute(data, start = 0, end = data.length) {
    return Buffer.from(blake2b(data.subarray(start, end), undefined, 32));
  },
};

interface XxhashApi {
  h64Raw(input: Uint8Array, seed?: bigint): bigint;
}

let xxhashApi: Promise<XxhashApi> | undefined;

async function xxhash64Sum(): Promise<Checksummer> {
  // An ES module (its WebAssembly is instantiated asynchronously): loaded on the first filesystem that needs it.
  xxhashApi ??= import('xxhash-wasm').then((m) => m.default());
  const api = await xxhashApi;
  return {
    name: 'xxhash64',
    size: 8,
    compute(data, start = 0, end = data.length) {
      const out = Buffer.alloc(8);
      out.writeBigUInt64LE(api.h64Raw(data.subarray(start, end), 0n));
      return out;
    },
  };
}

/** The checksummer of superblock csum_type, or EOPNOTSUPP naming the algorithm. */
export async function checksummerFor(csumType: number): Promise<Checksummer> {
  switch (csumType) {
    case CsumType.CRC32C:
      return crc32cSum;
    case CsumType.SHA256:
      return sha256Sum;
    case CsumType.XXHASH64:
      return xxhash64Sum();
    case CsumType.BLAKE2B:
      return blake2bSum;
    default:
      throw unsupported(`unknown checksum algorithm ${csumType}`);
  }
}

/** Whether `stored` (the block's leading csum field) matches the checksum of data[start, end). */
export function checksumMatches(sum: Checksummer, stored: Buffer, data: Buffer, start: number, end: number): boolean {
  return sum.compute(data, start, end).equals(stored.subarray(0, sum.size));
}
