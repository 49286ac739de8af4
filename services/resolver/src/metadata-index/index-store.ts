import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { StrataError, isStrataError } from '@strata/errors';
import { INDEX_VERSION, IndexRejected } from './index-format';

/**
 * Index files in the shared store (`<store>/.strata/index`), one per chain,
 * named by a hash of the chain's cache identity and the format version:
 * a changed chain (any generation, any image file) has another name, and
 * replicas of another version keep files of their own instead of
 * replacing each other's.
 */
export class IndexStore {
  constructor(
    readonly dir: string,
    private readonly maxBytes: number,
  ) {}

  fileOf(key: string): string {
    const h = createHash('sha256').update(key).digest('hex').slice(0, 40);
    return path.join(this.dir, `${h}.v${INDEX_VERSION}.idx`);
  }

  /**
   * The file's bytes, or undefined when there is none. A file over the
   * bound is refused before anything is allocated for it.
   */
  async read(key: string): Promise<Buffer | undefined> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(this.fileOf(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw StrataError.from(err, 'metadata index');
    }
    try {
      const { size } = await fh.stat();
      if (size > this.maxBytes) throw new IndexRejected('too-big', `${size} bytes exceed the bound of ${this.maxBytes}`);
      const buf = Buffer.allocUnsafe(size);
      let got = 0;
      // Each read makes progress or ends the loop: at most size / 1 iterations, in practice one.
      while (got < size) {
        const { bytesRead } = await fh.read(buf, got, size - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === size ? buf : buf.subarray(0, got);
    } catch (err) {
      if (err instanceof IndexRejected || isStrataError(err)) throw err;
      throw StrataError.from(err, 'metadata index');
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /**
   * Written whole or not at all: a temporary file beside it, synced, then
   * renamed over the name (atomic on a local filesystem and on NFS), so a
   * reader on any replica sees the old file, the new one, or none.
   */
  async write(key: string, data: Buffer): Promise<string> {
    const file = this.fileOf(key);
    await fs.mkdir(this.dir, { recursive: true });
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      const fh = await fs.open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, file);
      return file;
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw StrataError.from(err, `metadata index ${file}`);
    }
  }
}
