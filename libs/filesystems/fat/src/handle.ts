/**
 * Handles (and st_ino): the position of an object's short entry, as the
 * directory holding it and the entry's index there. The kernel numbers FAT
 * inodes with iunique() — different on every mount — so a stable number is
 * made here instead: ino = directoryKey × 65536 + index + 2, where the
 * directory key is its first cluster (0 for the root directory) and the
 * index (< 65536, the kernel's limit on entries in one directory) counts
 * 32-byte entries from its start. The root directory is 1, as the kernel's
 * MSDOS_ROOT_INO. The largest value (key < 2^28) stays below 2^44.
 */
import { badHandle } from './errors';

export const ROOT_HANDLE = 1;
export const MAX_DIR_ENTRIES = 65536;

export interface EntryPosition {
  /** The holding directory's first cluster, 0 for the root directory. */
  dirKey: number;
  index: number;
}

export function entryHandle(dirKey: number, index: number): number {
  return dirKey * MAX_DIR_ENTRIES + index + 2;
}

export function decodeHandle(handle: number, maxCluster: number): EntryPosition {
  if (!Number.isSafeInteger(handle) || handle < 2) throw badHandle(handle, 'not a handle of this filesystem');
  const v = handle - 2;
  const dirKey = Math.floor(v / MAX_DIR_ENTRIES);
  const index = v % MAX_DIR_ENTRIES;
  if (dirKey !== 0 && (dirKey < 2 || dirKey >= maxCluster)) throw badHandle(handle, 'not a handle of this filesystem');
  return { dirKey, index };
}
