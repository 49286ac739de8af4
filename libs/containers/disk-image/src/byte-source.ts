import { Errno, StrataError } from '@strata/errors';

/** Random-access, read-only bytes: a whole virtual disk, or one partition of it. */
export interface ByteSource {
  /** Size in bytes (the virtual disk size for qcow2). */
  readonly size: number;
  /**
   * Exactly `length` bytes at `offset` (holes and unallocated clusters read as
   * zeros). A range past `size` is a StrataError EIO, never a short buffer.
   * Concurrent calls are allowed.
   */
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * read() into the caller's buffer: fills target[targetOffset, +length)
   * with every byte of [offset, offset+length), or rejects (what it left in
   * target is then undefined). Saves the allocation and the copy a reader
   * makes when it assembles a file's bytes; optional, read() is the rule.
   */
  readInto?(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void>;
  /** The logical sector size partition tables on it count in, when the source knows it (a VHDX says 4096 for a 4Kn disk); 512 otherwise. */
  readonly logicalSectorSize?: number;
}

/**
 * The largest single read we hand out. One request allocates one buffer of
 * this size, so a caller's mistake (or a corrupt length it passes through)
 * cannot ask for gigabytes at once.
 */
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
    throw new StrataError(
      Errno.EIO,
      `${what}: read of ${length} bytes at offset ${offset} goes past the end (size ${size})`,
    );
  }
}

/** Throws EINVAL unless target[targetOffset, +length) lies inside target (a caller's error, not the image's). */
export function checkTarget(what: string, target: Buffer, targetOffset: number, length: number): void {
  if (!Number.isSafeInteger(targetOffset) || targetOffset < 0 || targetOffset + length > target.length) {
    throw new StrataError(Errno.EINVAL, `${what}: ${length} bytes at ${targetOffset} do not fit in a buffer of ${target.length}`);
  }
}

/** A window of a ByteSource (a partition), bounds-checked. */
export function sliceSource(disk: ByteSource, start: number, size: number): ByteSource {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(size) || start < 0 || size < 0 || start + size > disk.size) {
    throw new StrataError(
      Errno.EINVAL,
      `slice of ${size} bytes at offset ${start} does not fit in a source of ${disk.size} bytes`,
    );
  }
  const into = disk.readInto?.bind(disk);
  return {
    size,
    async read(offset: number, length: number): Promise<Buffer> {
      checkReadRange('partition', size, offset, length);
      return disk.read(start + offset, length);
    },
    ...(into
      ? {
          async readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
            checkReadRange('partition', size, offset, length);
            checkTarget('partition', target, targetOffset, length);
            return into(target, targetOffset, start + offset, length);
          },
        }
      : {}),
  };
}

/** A ByteSource over bytes already in memory (tests, small fixtures, decoded metadata). */
export function bufferSource(bytes: Buffer): ByteSource {
  return {
    size: bytes.length,
    async read(offset: number, length: number): Promise<Buffer> {
      checkReadRange('buffer', bytes.length, offset, length);
      return Buffer.from(bytes.subarray(offset, offset + length));
    },
  };
}
