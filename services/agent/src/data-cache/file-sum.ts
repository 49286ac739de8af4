import { closeSync, constants, fstatSync } from 'node:fs';
import { openFd, readFd } from './fd-calls';
import { crc32 } from 'node:zlib';

/**
 * A cached file's checksum: the CRC-32 of each chunk, folded by a CRC-32 of
 * those CRCs in chunk order. Chunks arrive in any order (the fill's own
 * fetches and what readers fetched meanwhile), so it is summed as they are
 * written, with no second pass over the file; zlib's CRC-32 is native.
 */
export class ChunkSums {
  private readonly crcs: Buffer;
  private readonly seen: Uint8Array;
  private missing: number;

  constructor(size: number, readonly chunkSize: number) {
    const chunks = Math.ceil(size / chunkSize);
    this.crcs = Buffer.alloc(chunks * 4);
    this.seen = new Uint8Array(chunks);
    this.missing = chunks;
  }

  add(index: number, data: Uint8Array): void {
    if (index < 0 || index >= this.seen.length || this.seen[index] === 1) return;
    this.crcs.writeUInt32LE(crc32(data), index * 4);
    this.seen[index] = 1;
    this.missing--;
  }

  /** The file's sum; undefined while a chunk was never added. */
  total(): number | undefined {
    return this.missing === 0 ? crc32(this.crcs) : undefined;
  }
}

/**
 * The sum of `file`, which must be a regular file of `size` bytes, read
 * `chunkSize` at a time (one buffer of that size, whatever the file's
 * size); undefined when it is not, or cannot be read.
 */
export async function sumOfFile(file: string, size: number, chunkSize: number): Promise<number | undefined> {
  let fd: number;
  try {
    fd = await openFd(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    // Its inode is in memory once open: no I/O, no round trip.
    const st = fstatSync(fd);
    if (!st.isFile() || st.size !== size) return undefined;
    const sums = new ChunkSums(size, chunkSize);
    const buf = Buffer.allocUnsafe(Math.min(chunkSize, size));
    for (let i = 0, pos = 0; pos < size; i++, pos += chunkSize) {
      const want = Math.min(chunkSize, size - pos);
      let got = 0;
      // Bounded: each pass reads at least one byte or ends the sum.
      while (got < want) {
        const bytesRead = await readFd(fd, buf, got, want - got, pos + got);
        if (bytesRead === 0) return undefined;
        got += bytesRead;
      }
      sums.add(i, buf.subarray(0, want));
    }
    return sums.total();
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
