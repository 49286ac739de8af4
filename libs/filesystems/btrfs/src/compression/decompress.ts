import { inflateRawSync, inflateSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { isStrataError } from '@strata/errors';
import { Compression } from '../constants';
import { ioError, unsupported } from '../errors';
import { btrfsLzoDecompress } from './btrfs-lzo';
import { zstdFrameInfo } from './zstd-frame';

/** The kernel's largest zstd window for btrfs (ZSTD_BTRFS_MAX_WINDOWLOG 17). */
const ZSTD_MAX_WINDOW = 1 << 17;
/** No btrfs extent decompresses to more than 128 KiB (inline: one sector). */
export const MAX_UNCOMPRESSED = 128 * 1024;

function zlibInflate(src: Buffer, outLength: number): Buffer {
  // As the kernel: a zlib header without a preset dictionary is skipped and the rest inflated raw (no adler32 check).
  const headerOk = src.length >= 2 && (src[0] & 0x0f) === 8 && (src[1] & 0x20) === 0 && ((src[0] << 8) | src[1]) % 31 === 0;
  const opts = { maxOutputLength: Math.max(outLength, 1) };
  return headerOk ? inflateRawSync(src.subarray(2), opts) : inflateSync(src, opts);
}

function zstd(src: Buffer, outLength: number): Buffer {
  const info = zstdFrameInfo(src);
  if (!info) throw ioError('zstd: not a well-formed frame');
  if (info.windowSize > ZSTD_MAX_WINDOW) throw ioError(`zstd: window of ${info.windowSize} bytes exceeds btrfs's limit`);
  const out = new Uint8Array(outLength);
  const got = zstdDecompress(src.subarray(0, info.length), out);
  return Buffer.from(got.buffer, got.byteOffset, Math.min(got.length, outLength));
}

/**
 * The first `outLength` bytes of a compressed extent (fewer when the stream
 * holds fewer; callers zero-fill the rest, as the kernel does). A stream that
 * cannot be decoded is EIO, as the kernel's read.
 */
export function decompressExtent(compression: number, src: Buffer, outLength: number, sectorsize: number): Buffer {
  if (outLength > MAX_UNCOMPRESSED) throw ioError(`compressed extent of ${outLength} bytes exceeds 128 KiB`);
  try {
    switch (compression) {
      case Compression.ZLIB:
        return zlibInflate(src, outLength).subarray(0, outLength);
      case Compression.LZO:
        return btrfsLzoDecompress(src, outLength, sectorsize);
      case Compression.ZSTD:
        return zstd(src, outLength);
      default:
        throw unsupported(`compression type ${compression}`);
    }
  } catch (err) {
    if (isStrataError(err)) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw ioError(`${['', 'zlib', 'lzo', 'zstd'][compression] ?? 'compressed'} extent: ${message}`);
  }
}
