import type Fuse from 'fuse-native';
import type { Attr, StatFsResponse } from '@strata/protocol';

function ms(sec: number, nsec: number): number {
  // fuse-native carries milliseconds as two uint32 halves: no room for times before 1970.
  return Math.max(0, sec * 1000 + Math.floor(nsec / 1e6));
}

/** The resolver's Attr as fuse-native wants it (st_ino is cut to 32 bits by fuse-native). */
export function toFuseStat(a: Attr): Fuse.Stat {
  return {
    mode: a.mode,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    dev: 0,
    nlink: a.nlink,
    ino: a.ino,
    rdev: a.rdev,
    blksize: a.blksize,
    blocks: a.blocks,
    atime: ms(a.atimeSec, a.atimeNsec),
    mtime: ms(a.mtimeSec, a.mtimeNsec),
    ctime: ms(a.ctimeSec, a.ctimeNsec),
  };
}

export function toFuseStatFs(s: StatFsResponse): Fuse.StatFs {
  // statvfs counts are 32 bits in fuse-native's wire array: clamp rather than wrap.
  const c = (n: number): number => Math.min(n, 0xffffffff);
  return {
    bsize: s.bsize,
    frsize: s.frsize,
    blocks: c(s.blocks),
    bfree: c(s.bfree),
    bavail: c(s.bavail),
    files: c(s.files),
    ffree: c(s.ffree),
    favail: c(s.ffree),
    fsid: 0,
    flag: 1, // ST_RDONLY
    namemax: s.namemax,
  };
}
