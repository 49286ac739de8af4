import type { FuseSession } from '@strata/fuse-kernel';
import type { PrefetchSink } from '../mount/mount-fs';
import { kernelAttr, kernelEntries } from './attr';
import type { NodeTable } from './node-table';

/**
 * Hands what a mount's prefetch Walk learnt to the session's native cache:
 * every complete directory (its LOOKUPs and READDIRPLUS answered on the
 * reader threads from then on) and every link target. Only for sealed
 * layers: these stay until the kernel forgets them and the cache bound evicts them.
 */
export function nativePrefetchSink(session: FuseSession, nodes: NodeTable): PrefetchSink {
  return {
    directory(key, listing, parentIno) {
      const ino = nodes.inoOf(key);
      const entries = kernelEntries(nodes, key, listing.entries);
      session.cacheAttr(ino, kernelAttr(listing.dir));
      session.cacheListing(ino, { entries, dotIno: BigInt(listing.dir.ino), dotdotIno: BigInt(parentIno) });
    },
    link(key, target) {
      session.cacheLink(nodes.inoOf(key), target);
    },
  };
}
