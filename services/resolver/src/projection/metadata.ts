import { LRUCache } from 'lru-cache';
import { Errno, StrataError, errnoName, isStrataError } from '@strata/errors';
import { recordKey } from '@strata/cache';
import { DirEntry, ListingRecord, NodeRecord, XattrRecord, errorInfoOf } from '@strata/protocol';
import { type Node, attrOf, isLinkStat, joinPath, printable, splitPath, supplierOf } from '@strata/traversal';
import { inSpan } from '@strata/telemetry';
import type { ChainView } from '../chains';
import { childPath, childPrefix } from './child-path';
import { RecordCache } from './record-cache';

/** Store work is traced only as part of a request's trace. */
const STORE_SPAN = { childOnly: true };

/** Lookup failures that depend only on the (sealed) tree, so they are cached like answers. */
const NEGATIVE = new Set<number>([Errno.ENOENT, Errno.ENOTDIR, Errno.ELOOP]);
const NEGATIVE_TEXT: Record<number, string> = {
  [Errno.ENOENT]: 'no such file or directory',
  [Errno.ENOTDIR]: 'not a directory',
  [Errno.ELOOP]: 'too many levels of symbolic links',
};

/**
 * Misses in one directory of a sealed chain after which its whole listing is
 * read, recording every child's node at once: a program reading a tree file
 * by file (cp -r, tar, find | xargs cat) would otherwise pay a lookup through
 * every layer per file (an lstat per layer, and one for its whiteout name,
 * most of them failing), against one listing of each layer per directory.
 * One miss alone stays a single lookup: reading one file of a huge directory
 * must not list it.
 */
export const SIBLING_FILL_AFTER = 2;
/**
 * A directory this small (its layers' directory sizes together, as their
 * filesystems report them: a few hundred names) is listed at its first
 * miss: listing it costs less than looking one name up through every layer.
 */
export const SMALL_DIR_BYTES = 16n * 1024n;
/** Directories whose misses are counted. */
const MISS_COUNTED_DIRS = 1024;

/** A record's link target when it is not a link (records are encoded, never changed in place). */
const NO_TARGET = Buffer.alloc(0);
/** A failed lookup's record, errno to be set. */
const NO_NODE: NodeRecord = { errno: 0, attr: undefined, locations: [], directory: false, linkTarget: NO_TARGET, sourceLayer: 0 };

/**
 * Merged metadata of a chain's paths as cache records: a path's node, a
 * directory's listing, a path's xattrs. A miss goes to the traversal engine
 * and the answer is stored for every replica.
 */
export class Metadata {
  /** Decoded listings, so paging through a huge directory does not decode it once per page. */
  private readonly listings = new LRUCache<string, DirEntry[]>({ max: 64 });
  /** Node misses per directory (listing key) of sealed chains, until one reaches SIBLING_FILL_AFTER. */
  private readonly dirMisses = new LRUCache<string, number>({ max: MISS_COUNTED_DIRS });

  /** Link targets of the entries of listings this process read from the store (a walk sends each link's target with it). */
  private readonly targets = new WeakMap<DirEntry, Buffer>();

  constructor(private readonly records: RecordCache) {}

  /** The target of a link a listing read from the store listed, if this process read it; else undefined (ask node()). */
  listedTarget(entry: DirEntry): Buffer | undefined {
    return this.targets.get(entry);
  }

  /** A path's node record, or the errno of its failed lookup thrown. */
  async node(view: ChainView, path: Buffer): Promise<{ canon: Buffer; rec: NodeRecord }> {
    const parts = splitPath(path);
    const canon = joinPath(parts);
    const key = recordKey(view.key, 'n', canon);
    const hit = await this.records.get(view, key);
    const rec = hit ? NodeRecord.decode(hit) : await this.records.once(key, () => this.missedNode(view, parts, canon, key));
    if (rec.errno !== 0) {
      throw new StrataError(rec.errno, `${NEGATIVE_TEXT[rec.errno] ?? errnoName(rec.errno)}: ${printable(canon)}`, { path: canon });
    }
    return { canon, rec };
  }

  async listing(view: ChainView, canon: Buffer): Promise<DirEntry[]> {
    const key = recordKey(view.key, 'd', canon);
    const decoded = this.listings.get(key);
    if (decoded) return decoded;
    // Concurrent askers (readers of sibling files filling it, a walk's prefetch) share one listing.
    return this.records.once(key, () => this.loadListing(view, canon, key));
  }

  private async loadListing(view: ChainView, canon: Buffer, key: string): Promise<DirEntry[]> {
    const hit = await this.records.get(view, key);
    let entries: DirEntry[];
    if (hit) {
      entries = ListingRecord.decode(hit).entries;
    } else {
      entries = await inSpan('store.readdir', () => ({ 'strata.path': printable(canon) }), () => this.readDirectory(view, canon), STORE_SPAN);
      this.records.put(view, key, ListingRecord.encode({ entries }).finish());
    }
    this.listings.set(key, entries, view.ttlMs ? { ttl: view.ttlMs } : undefined);
    return entries;
  }

  async xattrs(view: ChainView, path: Buffer): Promise<XattrRecord> {
    const { canon } = await this.node(view, path);
    const key = recordKey(view.key, 'x', canon);
    const hit = await this.records.get(view, key);
    if (hit) return XattrRecord.decode(hit);
    return inSpan('store.xattrs', () => ({ 'strata.path': printable(canon) }), () => this.readXattrs(view, canon, key), STORE_SPAN);
  }

  /**
   * A node no cache tier holds. In a sealed chain, the second miss in a
   * directory (the first in a small one) reads the directory, which records
   * every child (misses meanwhile wait for it); whatever it does not answer
   * is looked up alone.
   * A LIVE chain always looks the path up: its listing may be older than
   * the file.
   */
  private async missedNode(view: ChainView, parts: Buffer[], canon: Buffer, key: string): Promise<NodeRecord> {
    if (view.ttlMs === undefined && parts.length > 0) {
      const parent = joinPath(parts.slice(0, -1));
      const dirKey = recordKey(view.key, 'd', parent);
      const misses = Math.min((this.dirMisses.get(dirKey) ?? 0) + 1, SIBLING_FILL_AFTER);
      this.dirMisses.set(dirKey, misses);
      if (misses >= SIBLING_FILL_AFTER || (await this.isSmallDir(view, parent))) {
        // Later misses share the listing under way, or take its decoded copy. Not a directory,
        // damaged, ...: the lookup alone gives the answer (and the error) it always gave.
        const listed = await this.listing(view, parent).then(
          () => true,
          () => false,
        );
        const filled = listed ? this.records.peek(key) : undefined;
        if (filled) return NodeRecord.decode(filled);
      }
    }
    return this.resolveNode(view, canon, key);
  }

  /** Whether the directory at `dir` is small enough to list for one miss (false for anything else, and on any error). */
  private async isSmallDir(view: ChainView, dir: Buffer): Promise<boolean> {
    try {
      const node = await view.projection.lookupDir(dir);
      let bytes = 0n;
      for (const d of node.dirs) bytes += d.st.size;
      return bytes <= SMALL_DIR_BYTES;
    } catch {
      return false;
    }
  }

  private async resolveNode(view: ChainView, canon: Buffer, key: string): Promise<NodeRecord> {
    let rec: NodeRecord;
    try {
      rec = await inSpan('store.lookup', () => ({ 'strata.path': printable(canon) }), async () => this.recordOf(view, canon, await view.projection.lookup(canon)), STORE_SPAN);
    } catch (err) {
      if (!isStrataError(err) || !NEGATIVE.has(err.errno)) throw err;
      rec = { ...NO_NODE, errno: err.errno };
    }
    this.records.put(view, key, NodeRecord.encode(rec).finish());
    return rec;
  }

  /** A node as a record: attributes, where its data is (for reads from the record alone), a link's target. */
  private async recordOf(view: ChainView, path: Buffer, node: Node): Promise<NodeRecord> {
    const rec = this.recordWithoutTarget(view, node);
    if (node.kind === 'leaf' && isLinkStat(node.st)) rec.linkTarget = await view.projection.linkTarget(path, node);
    return rec;
  }

  /** The record of a node, its link target (if a link) left empty. */
  private recordWithoutTarget(view: ChainView, node: Node): NodeRecord {
    const supplier = supplierOf(node);
    return {
      errno: 0,
      attr: attrOf(node),
      locations: node.kind === 'dir' ? node.dirs.map((o) => o.layer.locate(o)) : [node.obj.layer.locate(node.obj)],
      directory: node.kind === 'dir',
      linkTarget: NO_TARGET,
      sourceLayer: view.projection.layers.indexOf(supplier.layer),
    };
  }

  /**
   * A directory from the store. The merge already found the node behind
   * every entry, so their records are cached too: the reads and lookups that
   * follow a listing (or a Walk) skip the layer-by-layer lookup.
   */
  private async readDirectory(view: ChainView, canon: Buffer): Promise<DirEntry[]> {
    const merged = await view.projection.readdirNodes(canon);
    const prefix = childPrefix(canon);
    const entries: DirEntry[] = [];
    for (const e of merged) {
      const child = childPath(prefix, e.name);
      if (!e.node) {
        // Listed but unreadable (a damaged inode): no attributes, and a lookup of it fails with the object's errno.
        entries.push({ name: e.name, attr: undefined, error: errorInfoOf(e.error) });
        this.records.put(view, recordKey(view.key, 'n', child), NodeRecord.encode({ ...NO_NODE, errno: e.error.errno }).finish());
        continue;
      }
      // Only a link's record waits (for its target); the others are made in this turn.
      const link = e.node.kind === 'leaf' && isLinkStat(e.node.st);
      const rec = link ? await this.recordOf(view, child, e.node) : this.recordWithoutTarget(view, e.node);
      const entry: DirEntry = { name: e.name, attr: rec.attr };
      if (link) this.targets.set(entry, rec.linkTarget);
      entries.push(entry);
      this.records.put(view, recordKey(view.key, 'n', child), NodeRecord.encode(rec).finish());
    }
    return entries;
  }

  private async readXattrs(view: ChainView, canon: Buffer, key: string): Promise<XattrRecord> {
    const names = await view.projection.listXattr(canon);
    const xattrs = [];
    for (const name of names) {
      const value = await view.projection.getXattr(canon, name).catch((err: unknown) => {
        if (isStrataError(err) && err.errno === Errno.ENODATA) return undefined; // removed since listing
        throw err;
      });
      if (value) xattrs.push({ name, value });
    }
    const rec: XattrRecord = { xattrs };
    this.records.put(view, key, XattrRecord.encode(rec).finish());
    return rec;
  }
}
