import { Errno, StrataError, isStrataError } from '@strata/errors';

/** A corrupt on-disk structure: EUCLEAN, as the kernel's tree-checker answers. */
export function corrupt(message: string): StrataError {
  return new StrataError(Errno.EUCLEAN, `btrfs: ${message}`);
}

export function unsupported(message: string): StrataError {
  return StrataError.unsupported(`btrfs: ${message}`);
}

export function ioError(message: string): StrataError {
  return new StrataError(Errno.EIO, `btrfs: ${message}`);
}

/** Bounds-checked view: every read past the buffer is EUCLEAN naming what was being parsed. */
export function need(buf: Buffer, offset: number, length: number, what: string): void {
  if (offset < 0 || length < 0 || offset + length > buf.length) {
    throw corrupt(`${what}: ${length} bytes at ${offset} run past its ${buf.length}-byte container`);
  }
}

/** A u64 that must fit a JavaScript number (byte offsets, sizes). */
export function safeU64(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new StrataError(Errno.EOVERFLOW, `btrfs: ${what} ${value} exceeds 2^53`);
  return Number(value);
}

/** Runs fn; anything that is not a StrataError becomes EIO (nothing else may escape a public call). */
export async function guarded<T>(what: string, fn: () => Promise<T>, onInternal?: (err: unknown) => void): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isStrataError(err)) throw err;
    onInternal?.(err);
    throw StrataError.from(err, `btrfs ${what}`);
  }
}
