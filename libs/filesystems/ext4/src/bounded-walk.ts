/**
 * Test support: walks everything reachable through the reader, bounded in
 * depth, entries and bytes so that a corrupt image (a directory cycle, a
 * file claiming petabytes) still finishes. Returns the errors it met.
 */
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '@strata/posix';
import { Ext4 } from './ext4';

export interface WalkBounds {
  maxDepth: number;
  maxEntries: number;
  maxBytesPerFile: number;
}

export async function boundedWalk(fs: Ext4, bounds: WalkBounds, onError: (err: unknown) => void): Promise<number> {
  let visited = 0;
  const attempt = async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      onError(err);
      return undefined;
    }
  };
  const walk = async (ino: number, depth: number): Promise<void> => {
    if (depth > bounds.maxDepth || visited >= bounds.maxEntries) return;
    visited++;
    const st = await attempt(() => fs.inode(ino));
    await attempt(() => fs.xattrs(ino));
    if (!st) return;
    const type = st.mode & S_IFMT;
    if (type === S_IFDIR) {
      const entries = (await attempt(() => fs.readdir(ino))) ?? [];
      for (const e of entries.slice(0, bounds.maxEntries)) {
        await attempt(() => fs.lookup(ino, e.name));
        await walk(e.ino, depth + 1);
      }
    } else if (type === S_IFREG) {
      const n = Math.min(st.size, bounds.maxBytesPerFile);
      for (let off = 0; off < n; off += 256 * 1024) await attempt(() => fs.read(ino, off, 256 * 1024));
    } else if (type === S_IFLNK) {
      await attempt(() => fs.readlink(ino));
    }
  };
  await walk(fs.rootIno, 0);
  return visited;
}
