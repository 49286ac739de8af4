/**
 * FAT attributes and times to stat(2), as the kernel's vfat driver maps
 * them with default mount options (fs/fat/inode.c fat_fill_inode,
 * fat_read_root; fs/fat/file.c fat_getattr; fs/fat/fat.h fat_make_mode).
 * See README.md, "The mapping".
 */
import type { FsNode } from '@strata/filesystem';
import { S_IFDIR, S_IFREG } from '@strata/posix';
import { ATTR_DIR, ATTR_RO, type ShortEntry } from './dir-entry';
import { dosTimeToNs } from './dos-time';

/** fmask and dmask default to the mounting process's umask; root's is 022. */
export const DEFAULT_UMASK = 0o022;
const S_IRWXUGO = 0o777;
const S_IWUGO = 0o222;

/** fat_make_mode without rodir: the read-only attribute clears write bits on files only. */
export function modeOf(attr: number): number {
  if (attr & ATTR_DIR) return S_IFDIR | (S_IRWXUGO & ~DEFAULT_UMASK);
  let perm = S_IRWXUGO;
  if (attr & ATTR_RO) perm &= ~S_IWUGO;
  return S_IFREG | (perm & ~DEFAULT_UMASK);
}

/** i_blocks: the size rounded up to whole clusters, in 512-byte units. */
export function blocksOf(size: number, clusterSize: number): number {
  return (Math.ceil(size / clusterSize) * clusterSize) / 512;
}

export interface DirFacts {
  /** The directory's chain length in bytes (its st_size). */
  size: number;
  /** fat_subdirs: directory entries with the directory bit, "." and ".." included. */
  subdirs: number;
}

export function entryNode(handle: number, e: ShortEntry, clusterSize: number, dir: DirFacts | undefined): FsNode {
  const size = dir ? dir.size : e.size;
  const mtimeNs = dosTimeToNs(e.time, e.date);
  return {
    handle,
    ino: handle,
    devIndex: 0,
    mode: modeOf(e.attr),
    uid: 0,
    gid: 0,
    nlink: dir ? dir.subdirs : 1,
    size,
    rdev: 0,
    blocks: blocksOf(size, clusterSize),
    blksize: clusterSize,
    atimeNs: dosTimeToNs(0, e.adate),
    mtimeNs,
    ctimeNs: mtimeNs,
    crtimeNs: dosTimeToNs(e.ctime, e.cdate, e.ctimeCs),
  };
}

/** fat_read_root: no entry describes the root, so its times are 0 and nlink counts its subdirectories plus 2. */
export function rootNode(handle: number, size: number, subdirs: number, clusterSize: number): FsNode {
  return {
    handle,
    ino: handle,
    devIndex: 0,
    mode: S_IFDIR | (S_IRWXUGO & ~DEFAULT_UMASK),
    uid: 0,
    gid: 0,
    nlink: subdirs + 2,
    size,
    rdev: 0,
    blocks: blocksOf(size, clusterSize),
    blksize: clusterSize,
    atimeNs: 0n,
    mtimeNs: 0n,
    ctimeNs: 0n,
    crtimeNs: 0n,
  };
}
