import { promises as fsp } from 'node:fs';
import type { ByteSource } from './types';

/** A ByteSource over a local image file, counting what it is asked for (tests assert read patterns with it). */
export class FileSource implements ByteSource {
  reads = 0;
  bytesRead = 0;

  private constructor(
    private readonly handle: fsp.FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<FileSource> {
    const handle = await fsp.open(path, 'r');
    const { size } = await handle.stat();
    return new FileSource(handle, size);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    this.bytesRead += length;
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.handle.read(buf, 0, length, offset);
    return bytesRead === length ? buf : buf.subarray(0, bytesRead);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}
