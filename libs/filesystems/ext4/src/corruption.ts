import { Errno, GrpcCode, StrataError } from '@strata/errors';

/**
 * On-disk data that cannot be right: EUCLEAN, the kernel's EFSCORRUPTED.
 * DATA_LOSS, not UNAVAILABLE: asking another resolver would read the same
 * bytes (a LIVE image retries by itself).
 */
export function corrupt(structure: string, detail: string): StrataError {
  return new StrataError(Errno.EUCLEAN, `ext4: corrupt ${structure}: ${detail}`, { code: GrpcCode.DATA_LOSS });
}

/** A metadata checksum that does not match: EBADMSG, the kernel's EFSBADCRC. */
export function badChecksum(structure: string, detail: string): StrataError {
  return new StrataError(Errno.EBADMSG, `ext4: corrupt ${structure}: ${detail}`, { code: GrpcCode.DATA_LOSS });
}

/** Bytes that cannot be read at all (an image shorter than its filesystem): EIO, as a failing block device gives. */
export function unreadable(structure: string, detail: string): StrataError {
  return StrataError.corrupt(`ext4: ${structure}: ${detail}`);
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

/**
 * A journal that cannot be recovered: the kernel refuses the mount, this
 * reader the open (or, for a logged copy a running guest overwrote, the
 * read), with EIO as before any filesystem object is involved.
 */
export function refused(structure: string, detail: string): StrataError {
  return StrataError.corrupt(`ext4: corrupt ${structure}: ${detail}`);
}
