import type { DirEntry as KernelDirEntry, FuseSession } from '@strata/fuse-kernel';
import type { Listing } from '../mount/listing-cache';
import type { PrefetchSink } from '../mount/mount-fs';
import { kernelAttr, kernelEntries } from './attr';
import type { KernelHandlers } from './kernel-handlers';
import type { NodeTable } from './node-table';

interface HeldDirectory {
  key: string;
  listing: Listing;
  parentIno: number;
  keys: readonly string[] | undefined;
}

/**
 * Hands what a mount's prefetch Walk learnt to the session's native cache:
 * every complete directory (its LOOKUPs and READDIRPLUS answered on the
 * reader threads from then on) and every link target. Only for sealed
 * layers: these stay until the kernel forgets them and the cache bound evicts them.
 * `listed` (the mount's Mount.listed): told of each complete directory too,
 * so its large files are handed over ahead of their first READ.
 *
 * Directories and links are held until the prefetch's next flush (each of
 * its slices): the new inos of all of them then go to the node journal in
 * one write(2), rather than one per directory and per link, before the
 * session can answer with them. Until then the kernel is answered from
 * JavaScript, whose caches the prefetch filled already.
 */
export function nativePrefetchSink(session: FuseSession, nodes: NodeTable, listed?: KernelHandlers['listed']): PrefetchSink {
  let dirs: HeldDirectory[] = [];
  let links: [string, Buffer][] = [];
  const flush = (): void => {
    if (dirs.length === 0 && links.length === 0) return;
    const heldDirs = dirs;
    const heldLinks = links;
    dirs = [];
    links = [];
    const inos = nodes.batch(() => ({
      links: heldLinks.map(([key]) => nodes.inoOf(key)),
      dirs: heldDirs.map((d): [bigint, KernelDirEntry[]] => [nodes.inoOf(d.key), kernelEntries(nodes, d.key, d.listing.entries, d.keys)]),
    }));
    for (const [i, d] of heldDirs.entries()) {
      const [ino, entries] = inos.dirs[i];
      session.cacheAttr(ino, kernelAttr(d.listing.dir));
      session.cacheListing(ino, { entries, dotIno: BigInt(d.listing.dir.ino), dotdotIno: BigInt(d.parentIno) });
      listed?.(d.key, d.listing.entries);
    }
    for (const [i, [, target]] of heldLinks.entries()) session.cacheLink(inos.links[i], target);
  };
  return {
    directory(key, listing, parentIno, keys) {
      dirs.push({ key, listing, parentIno, keys });
    },
    link(key, target) {
      links.push([key, target]);
    },
    flush,
  };
}
