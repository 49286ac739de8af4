import type { FuseSession } from '@strata/fuse-kernel';
import type { PrefetchSink } from '../mount/mount-fs';
import { kernelAttr, kernelEntries } from './attr';
import type { KernelHandlers } from './kernel-handlers';
import type { NodeTable } from './node-table';

/**
 * Hands what a mount's prefetch Walk learnt to the session's native cache:
 * every complete directory (its LOOKUPs and READDIRPLUS answered on the
 * reader threads from then on) and every link target. Only for sealed
 * layers: these stay until the kernel forgets them and the cache bound evicts them.
 * `listed` (the mount's Mount.listed): told of each complete directory too,
 * so its large files are handed over ahead of their first READ.
 */
export function nativePrefetchSink(session: FuseSession, nodes: NodeTable, listed?: KernelHandlers['listed']): PrefetchSink {
  return {
    directory(key, listing, parentIno, keys) {
      // The directory's new inos go to the node journal in one write, before the session can answer with them.
      const { ino, entries } = nodes.batch(() => ({ ino: nodes.inoOf(key), entries: kernelEntries(nodes, key, listing.entries, keys) }));
      session.cacheAttr(ino, kernelAttr(listing.dir));
      session.cacheListing(ino, { entries, dotIno: BigInt(listing.dir.ino), dotdotIno: BigInt(parentIno) });
      listed?.(key, listing.entries);
    },
    link(key, target) {
      session.cacheLink(nodes.inoOf(key), target);
    },
  };
}
