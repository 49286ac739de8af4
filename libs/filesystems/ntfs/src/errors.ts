import { Errno, StrataError } from '@strata/errors';
import type { FsEvent } from '@strata/filesystem';

/** A structure on disk that cannot be right: EUCLEAN (the kernel's EFSCORRUPTED), naming the structure. */
export function corrupt(structure: string, detail: string): StrataError {
  return new StrataError(Errno.EUCLEAN, `ntfs: corrupt ${structure}: ${detail}`);
}

export function unsupported(what: string): StrataError {
  return new StrataError(Errno.EOPNOTSUPP, `ntfs: unsupported ${what}`);
}

/**
 * Turns an unexpected exception (a bounds check this reader lacks) into
 * EUCLEAN and reports it, so corrupt data fails one call instead of the caller.
 */
export async function guarded<T>(log: (event: FsEvent) => void, op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StrataError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    log({ event: 'ntfs.internal', op, message, stack: err instanceof Error ? err.stack : undefined });
    throw new StrataError(Errno.EUCLEAN, `ntfs: ${op}: unexpected failure on corrupt data: ${message}`, { cause: err });
  }
}

/** A little-endian signed 64-bit field that must fit a safe integer. */
export function readInt64(buf: Buffer, at: number, structure: string): number {
  const v = buf.readBigInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw corrupt(structure, `64-bit value ${v} at ${at} is beyond 2^53`);
  return Number(v);
}

/** A little-endian unsigned 64-bit field that must fit a safe integer. */
export function readUint64(buf: Buffer, at: number, structure: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(structure, `64-bit value ${v} at ${at} is beyond 2^53`);
  return Number(v);
}
