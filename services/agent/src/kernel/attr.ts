import type { Attr as KernelAttr, StatFs as KernelStatFs } from '@strata/fuse-kernel';
import type { Attr, StatFsResponse } from '@strata/protocol';

function ns(sec: number, nsec: number): bigint {
  return BigInt(sec) * 1_000_000_000n + BigInt(nsec);
}

/**
 * The resolver's attributes as the kernel gets them: st_ino in full, times
 * in nanoseconds (negative seconds, before 1970, included), st_blocks and
 * st_blksize as the layer reports them rather than derived from the size.
 */
export function kernelAttr(a: Attr): KernelAttr {
  return {
    ino: BigInt(a.ino),
    mode: a.mode,
    nlink: a.nlink,
    uid: a.uid,
    gid: a.gid,
    rdev: a.rdev,
    size: a.size,
    blocks: a.blocks,
    blksize: a.blksize,
    atimeNs: ns(a.atimeSec, a.atimeNsec),
    mtimeNs: ns(a.mtimeSec, a.mtimeNsec),
    ctimeNs: ns(a.ctimeSec, a.ctimeNsec),
  };
}

export function kernelStatfs(s: StatFsResponse, cacheTtl: number): KernelStatFs {
  return { bsize: s.bsize, frsize: s.frsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, namelen: s.namemax, cacheTtl };
}
