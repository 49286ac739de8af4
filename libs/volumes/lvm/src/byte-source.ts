import { Errno, StrataError } from '@strata/errors';

/**
 * Random-access, read-only bytes (a disk, a partition): structurally the
 * ByteSource of @strata/disk-image, declared here so that this package does
 * not depend on the container formats.
 */
export interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes at `offset`; a range past `size` rejects (EIO). */
  read(offset: number, length: number): Promise<Buffer>;
}

/** The largest single read an LV hands out, as disk-image's MAX_READ_LENGTH. */
export const MAX_READ_LENGTH = 256 * 1024 * 1024;

/** Throws EIO unless [offset, offset+length) is a well-formed range inside `size` bytes. */
export function checkReadRange(what: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new StrataError(Errno.EIO, `${what}: invalid read range offset=${offset} length=${length}`);
  }
  if (length > MAX_READ_LENGTH) {
    throw new StrataError(Errno.EIO, `${what}: read of ${length} bytes exceeds the ${MAX_READ_LENGTH}-byte limit`);
  }
  if (offset + length > size) {
    throw new StrataError(Errno.EIO, `${what}: read of ${length} bytes at offset ${offset} goes past the end (size ${size})`);
  }
}

/** Reads a range the caller has not checked against the source yet: outside it is corruption of whatever pointed there. */
export async function readChecked(source: ByteSource, offset: number, length: number, what: string): Promise<Buffer> {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > source.size) {
    throw new StrataError(Errno.EUCLEAN, `${what}: ${length} bytes at offset ${offset} lie outside the device (${source.size} bytes)`);
  }
  const got = await source.read(offset, length);
  if (got.length !== length) throw new StrataError(Errno.EIO, `${what}: short read (${got.length} of ${length} bytes)`);
  return got;
}
