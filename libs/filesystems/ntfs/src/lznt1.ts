import { corrupt } from './errors';

/** LZNT1 works in chunks ("sub-blocks") of 4096 bytes of output. */
export const LZNT1_CHUNK = 4096;

/**
 * Decompresses one NTFS compression unit (LZNT1) into `outSize` bytes, as
 * ntfs-3g's ntfs_decompress does: a chunk header (bits 0-11: stored size
 * - 3, bit 15: compressed), then either 4096 raw bytes or groups of a tag
 * byte and eight tokens (a literal byte, or a 16-bit back reference whose
 * offset/length split depends on the position in the chunk). A short
 * chunk is padded with zeros; a zero header or the end of the input ends
 * the unit, and the rest of the output is zeros.
 */
export function decompressLznt1(input: Buffer, outSize: number, what = 'compressed data'): Buffer {
  const out = Buffer.alloc(outSize);
  let src = 0;
  let dst = 0;
  const fail = (why: string): never => {
    throw corrupt(what, `LZNT1 ${why} (input ${src}, output ${dst})`);
  };
  for (;;) {
    if (src + 2 > input.length || dst === outSize) return out;
    const header = input.readUInt16LE(src);
    if (header === 0) return out;
    const chunkStart = dst;
    const chunkEnd = dst + LZNT1_CHUNK;
    if (chunkEnd > outSize) fail('chunk past the end of the unit');
    if (src + 6 > input.length) fail('truncated chunk');
    const srcEnd = src + (header & 0x0fff) + 3;
    if (srcEnd > input.length) fail('chunk longer than the unit');
    src += 2;
    if ((header & 0x8000) === 0) {
      if (srcEnd - src !== LZNT1_CHUNK) fail('short uncompressed chunk');
      input.copy(out, dst, src, srcEnd);
      src = srcEnd;
      dst = chunkEnd;
      continue;
    }
    while (src < srcEnd) {
      let tag = input[src++];
      for (let t = 0; t < 8 && src < srcEnd; t++, tag >>= 1) {
        if ((tag & 1) === 0) {
          if (dst >= chunkEnd) fail('literal past the chunk');
          out[dst++] = input[src++];
          continue;
        }
        if (dst === chunkStart) fail('back reference at the start of a chunk');
        if (src + 2 > srcEnd) fail('truncated back reference');
        let lg = 0;
        for (let i = dst - chunkStart - 1; i >= 0x10; i >>= 1) lg++;
        const token = input.readUInt16LE(src);
        src += 2;
        const back = dst - (token >> (12 - lg)) - 1;
        const length = (token & (0xfff >> lg)) + 3;
        if (back < chunkStart) fail('back reference before the chunk');
        if (dst + length > chunkEnd) fail('back reference past the chunk');
        // Byte by byte: an overlapping copy repeats what it has just written.
        for (let i = 0; i < length; i++) out[dst + i] = out[back + i];
        dst += length;
      }
    }
    dst = chunkEnd;
  }
}
