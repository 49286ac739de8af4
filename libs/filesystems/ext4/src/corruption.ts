import { Errno, StrataError } from '@strata/errors';

/**
 * On-disk data that cannot be right: the kernel answers EFSCORRUPTED/EFSBADCRC,
 * which reach userspace as EIO. DATA_LOSS, not UNAVAILABLE: asking another
 * resolver would read the same bytes (a LIVE image retries by itself).
 */
export function corrupt(structure: string, detail: string): StrataError {
  return StrataError.corrupt(`ext4: corrupt ${structure}: ${detail}`);
}

export function unsupported(what: string): StrataError {
  return new StrataError(Errno.EOPNOTSUPP, `ext4: unsupported ${what}`);
}

/** Reads a little-endian 64-bit value split in two halves; throws rather than lose precision past 2^53. */
export function join64(lo: number, hi: number, structure: string): number {
  const v = hi * 0x1_0000_0000 + lo;
  if (!Number.isSafeInteger(v)) throw corrupt(structure, `64-bit value ${hi}:${lo} is beyond 2^53`);
  return v;
}
