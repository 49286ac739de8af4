import { LzoError, lzo1xDecompress } from './lzo1x';

/** lzo1x_worst_compress(n): the largest a segment of n input bytes compresses to. */
function worstCompress(n: number): number {
  return n + Math.floor(n / 16) + 64 + 3;
}

/**
 * btrfs's segmented LZO: a u32 total length, then segments of (u32 length,
 * LZO1X stream) each holding at most one sector of output; a segment header
 * never straddles a sector boundary (the bytes before it are padding).
 * Returns up to `outLength` bytes.
 */
export function btrfsLzoDecompress(src: Buffer, outLength: number, sectorsize: number): Buffer {
  if (src.length < 4) throw new LzoError('lzo: extent shorter than its header');
  const total = src.readUInt32LE(0);
  if (total > src.length || total < 4) throw new LzoError(`lzo: total length ${total} outside the ${src.length}-byte extent`);
  const out = Buffer.alloc(outLength);
  const segment = new Uint8Array(sectorsize);
  let ip = 4;
  let op = 0;
  while (op < outLength && ip < total) {
    const left = sectorsize - (ip % sectorsize);
    if (left < 4) ip += left;
    if (ip + 4 > total) break;
    const len = src.readUInt32LE(ip);
    ip += 4;
    if (len > worstCompress(sectorsize) || ip + len > total) throw new LzoError(`lzo: segment of ${len} bytes at ${ip - 4} is impossible`);
    const n = lzo1xDecompress(src.subarray(ip, ip + len), segment);
    ip += len;
    const take = Math.min(n, outLength - op);
    out.set(segment.subarray(0, take), op);
    op += take;
    if (n === 0) break;
  }
  return out.subarray(0, op);
}
