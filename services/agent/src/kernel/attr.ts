import type { DirEntry as KernelDirEntry, Attr as KernelAttr, StatFs as KernelStatFs } from '@strata/fuse-kernel';
import type { Attr, DirEntry, StatFsResponse } from '@strata/protocol';
import { childKey } from '../mount/tree-path';
import type { NodeTable } from './node-table';

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

/** The entries of the directory at `key` as the session lists them: each child with its ino and attributes. */
export function kernelEntries(nodes: NodeTable, key: string, entries: readonly DirEntry[]): KernelDirEntry[] {
  // One write(2) of the new inos for the whole listing (before it is answered).
  return nodes.batch(() => listed(nodes, key, entries));
}

function listed(nodes: NodeTable, key: string, entries: readonly DirEntry[]): KernelDirEntry[] {
  const out: KernelDirEntry[] = [];
  for (const e of entries) {
    const ino = nodes.inoOf(childKey(key, e.name));
    if (e.attr) out.push({ name: e.name, ino, attr: kernelAttr(e.attr) });
    // A damaged object: listed by name alone (as the kernel's readdir lists it), its LOOKUP then fails with the resolver's errno.
    // Its type is not known either: DT_UNKNOWN (mode 0), as readdir may answer.
    else if (e.error) out.push({ name: e.name, ino, mode: 0 });
  }
  return out;
}
