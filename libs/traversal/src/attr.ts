import { S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR } from '@strata/posix';
import type { SourceStat } from './source/layer-source';

/**
 * Merged metadata of one entry. Field names match strata.v1.Attr so the
 * resolver can hand it to the protocol as is.
 */
export interface Attr {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blocks: number;
  blksize: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

/** The mode bits of SourceStat, for the type checks the engine makes per entry. */
const FMT = BigInt(S_IFMT);
const DIR = BigInt(S_IFDIR);
const REG = BigInt(S_IFREG);
const LNK = BigInt(S_IFLNK);
const CHR = BigInt(S_IFCHR);

export function isDirStat(st: SourceStat): boolean {
  return (st.mode & FMT) === DIR;
}

export function isRegStat(st: SourceStat): boolean {
  return (st.mode & FMT) === REG;
}

export function isLinkStat(st: SourceStat): boolean {
  return (st.mode & FMT) === LNK;
}

export function isCharStat(st: SourceStat): boolean {
  return (st.mode & FMT) === CHR;
}

const NS = 1_000_000_000n;

function sec(ns: bigint): number {
  // Floor division, so times before 1970 keep 0 <= nsec < 1e9 as in struct timespec.
  const s = ns / NS;
  return Number(ns < 0n && s * NS !== ns ? s - 1n : s);
}

function nsec(ns: bigint): number {
  const r = ns % NS;
  return Number(r < 0n ? r + NS : r);
}

/**
 * stat(2) of the supplying object with the overlayfs adjustment: a merged
 * directory reports nlink 1, because counting subdirectories across layers
 * is not worth it and `find` accepts 1 (fs/overlayfs/inode.c does the same).
 */
export function attrFromStats(st: SourceStat, mergedDir: boolean): Attr {
  return {
    ino: Number(st.ino),
    mode: Number(st.mode),
    nlink: mergedDir ? 1 : Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: Number(st.rdev),
    size: Number(st.size),
    blocks: Number(st.blocks),
    blksize: Number(st.blksize),
    atimeSec: sec(st.atimeNs),
    atimeNsec: nsec(st.atimeNs),
    mtimeSec: sec(st.mtimeNs),
    mtimeNsec: nsec(st.mtimeNs),
    ctimeSec: sec(st.ctimeNs),
    ctimeNsec: nsec(st.ctimeNs),
  };
}
