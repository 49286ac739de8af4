import { Errno, StrataError } from '@strata/errors';
import type { ByteSource } from './types';

/** A ByteSource over an in-memory image; refuses reads that no sane reader of it would make. */
export class MemorySource implements ByteSource {
  readonly size: number;
  largestRead = 0;

  constructor(
    private readonly image: Buffer,
    size?: number,
    private readonly maxRead = 16 * 1024 * 1024,
  ) {
    this.size = size ?? image.length;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.largestRead = Math.max(this.largestRead, length);
    if (length > this.maxRead) throw new Error(`read of ${length} bytes: larger than any read this image needs`);
    if (offset < 0 || offset + length > this.size) throw new StrataError(Errno.EIO, `read past the end of the source (${offset}+${length})`);
    const out = Buffer.alloc(length);
    this.image.copy(out, 0, offset, Math.min(offset + length, this.image.length));
    return out;
  }
}
