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
/** A temporary file older than this was left by a replica that died while writing. */
const STALE_TMP_MS = 10 * 60_000;
/** Directory entries looked at by one pruning (bounds its work on a huge directory). */
const PRUNE_SCAN_MAX = 100_000;
/** Default bound of all index files of a store together. */
export const DEFAULT_MAX_DIR_BYTES = 8 * 1024 ** 3;

export class IndexStore {
  constructor(
    readonly dir: string,
    private readonly maxBytes: number,
    private readonly maxDirBytes: number = DEFAULT_MAX_DIR_BYTES,
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
      await this.prune().catch(() => undefined);
      return file;
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw StrataError.from(err, `metadata index ${file}`);
    }
  }

  /**
   * Keeps the directory bounded, after each write (builds are rare):
   * temporary files of writers that died are removed, and while all index
   * files together exceed the bound, the least recently written go (a
   * chain whose index is gone is walked by traversal once and indexed
   * again; a replica reading a removed file keeps its open copy).
   */
  async prune(): Promise<{ removed: number }> {
    const dir = await fs.opendir(this.dir);
    const files: { file: string; size: number; mtimeMs: number }[] = [];
    let removed = 0;
    let seen = 0;
    const now = Date.now();
    for await (const e of dir) {
      if (++seen > PRUNE_SCAN_MAX) break;
      if (!e.isFile()) continue;
      const file = path.join(this.dir, e.name);
      const st = await fs.stat(file).catch(() => undefined);
      if (!st) continue;
      if (e.name.includes('.idx.tmp-')) {
        if (now - st.mtimeMs > STALE_TMP_MS && (await fs.rm(file, { force: true }).then(() => true, () => false))) removed++;
      } else if (e.name.endsWith('.idx')) {
        files.push({ file, size: st.size, mtimeMs: st.mtimeMs });
      }
    }
    let total = files.reduce((n, f) => n + f.size, 0);
    files.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const f of files) {
      if (total <= this.maxDirBytes) break;
      if (await fs.rm(f.file, { force: true }).then(() => true, () => false)) {
        total -= f.size;
        removed++;
      }
    }
    return { removed };
  }
}
