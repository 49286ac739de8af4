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
 * The bigint fields are made only when read: the session packs st_ino and
 * the times from the plain numbers also carried (wire AttrNumbers), which
 * spares four BigInts per entry of a prefetched listing.
 */
class ResolverAttr implements KernelAttr {
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev: number;
  readonly size: number;
  readonly blocks: number;
  readonly blksize: number;
  readonly stIno: number;
  readonly atimeSec: number;
  readonly atimeNsec: number;
  readonly mtimeSec: number;
  readonly mtimeNsec: number;
  readonly ctimeSec: number;
  readonly ctimeNsec: number;

  constructor(a: Attr) {
    this.mode = a.mode;
    this.nlink = a.nlink;
    this.uid = a.uid;
    this.gid = a.gid;
    this.rdev = a.rdev;
    this.size = a.size;
    this.blocks = a.blocks;
    this.blksize = a.blksize;
    this.stIno = a.ino;
    this.atimeSec = a.atimeSec;
    this.atimeNsec = a.atimeNsec;
    this.mtimeSec = a.mtimeSec;
    this.mtimeNsec = a.mtimeNsec;
    this.ctimeSec = a.ctimeSec;
    this.ctimeNsec = a.ctimeNsec;
  }

  get ino(): bigint {
    return BigInt(this.stIno);
  }

  get atimeNs(): bigint {
    return ns(this.atimeSec, this.atimeNsec);
  }

  get mtimeNs(): bigint {
    return ns(this.mtimeSec, this.mtimeNsec);
  }

  get ctimeNs(): bigint {
    return ns(this.ctimeSec, this.ctimeNsec);
  }
}

export function kernelAttr(a: Attr): KernelAttr {
  return new ResolverAttr(a);
}

export function kernelStatfs(s: StatFsResponse, cacheTtl: number): KernelStatFs {
  return { bsize: s.bsize, frsize: s.frsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, namelen: s.namemax, cacheTtl };
}

/**
 * The entries of the directory at `key` as the session lists them: each
 * child with its ino and attributes. `keys`: the children's keys in order,
 * when the caller has them (the prefetch does), else made from the names.
 */
export function kernelEntries(nodes: NodeTable, key: string, entries: readonly DirEntry[], keys?: readonly string[]): KernelDirEntry[] {
  // One write(2) of the new inos for the whole listing (before it is answered).
  return nodes.batch(() => listed(nodes, key, entries, keys?.length === entries.length ? keys : undefined));
}

function listed(nodes: NodeTable, key: string, entries: readonly DirEntry[], keys: readonly string[] | undefined): KernelDirEntry[] {
  const out: KernelDirEntry[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const ino = nodes.inoOf(keys ? keys[i] : childKey(key, e.name));
    if (e.attr) out.push({ name: e.name, ino, attr: kernelAttr(e.attr) });
    // A damaged object: listed by name alone (as the kernel's readdir lists it), its LOOKUP then fails with the resolver's errno.
    // Its type is not known either: DT_UNKNOWN (mode 0), as readdir may answer.
    else if (e.error) out.push({ name: e.name, ino, mode: 0 });
  }
  return out;
}
