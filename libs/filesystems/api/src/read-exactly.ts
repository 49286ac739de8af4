import { Errno, StrataError } from '@strata/errors';
import type { ByteSource } from './filesystem';

/**
 * `length` bytes at `offset`, or EUCLEAN naming `what` when the range lies
 * outside the volume: a pointer past the end is on-disk damage, not a
 * caller's error.
 */
export async function readExactly(source: ByteSource, offset: number, length: number, what: string): Promise<Buffer> {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > source.size) {
    throw new StrataError(Errno.EUCLEAN, `${what}: ${length} bytes at ${offset} lie outside the volume (${source.size} bytes)`);
  }
  return source.read(offset, length);
}
