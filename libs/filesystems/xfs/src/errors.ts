import { Errno, StrataError } from '@strata/errors';
import type { FsEvent } from '@strata/filesystem';

/**
 * On-disk data that cannot be right. The kernel reports both a failed
 * structure check (EFSCORRUPTED) and a failed metadata CRC (EFSBADCRC, which
 * xfs_buf_read turns into EFSCORRUPTED before it leaves the buffer cache) as
 * EUCLEAN, so this reader does too.
 */
export function corrupt(structure: string, detail: string): StrataError {
  return new StrataError(Errno.EUCLEAN, `xfs: corrupt ${structure}: ${detail}`);
}

export function badCrc(structure: string): StrataError {
  return new StrataError(Errno.EUCLEAN, `xfs: corrupt ${structure}: bad CRC`);
}

export function unsupported(what: string): StrataError {
  return new StrataError(Errno.EOPNOTSUPP, `xfs: unsupported ${what}`);
}

/**
 * Turns an unexpected exception (a bounds check this reader lacks) into
 * EUCLEAN and reports it, so hostile bytes fail one call, never the caller.
 */
export async function guarded<T>(log: (event: FsEvent) => void, op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StrataError) {
      // Damage (a failed check, a bad CRC) is worth a record beside the caller's error.
      if (err.errno === Errno.EUCLEAN) log({ event: 'xfs.damage', op, reason: err.message });
      throw err;
    }
    const message = err instanceof Error ? err.message : String(err);
    log({ event: 'xfs.internal', op, message, stack: err instanceof Error ? err.stack : undefined });
    throw new StrataError(Errno.EUCLEAN, `xfs: ${op}: unexpected failure on corrupt data: ${message}`, { cause: err });
  }
}

/** A big-endian 64-bit field as a number; larger than 2^53 is damage for every field this reader keeps. */
export function readU64(buf: Buffer, off: number, structure: string): number {
  const v = buf.readBigUInt64BE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(structure, `64-bit value ${v} at byte ${off} is beyond 2^53`);
  return Number(v);
}
