import { StrataError } from '@strata/errors';
import { isDirMode, isLinkMode } from '@strata/posix';
import { type Attr, type DirEntry, strataErrorFromInfo } from '@strata/protocol';
import type { WalkEntry, WalkError } from '@strata/traversal';
import type { ChainView } from '../chains';
import { childPath, childPrefix } from './child-path';
import { ListingPrefetcher } from './listing-prefetcher';
import type { Metadata } from './metadata';

/** Entries per Walk message (an index-served Walk batches the same way: its answers are byte-for-byte the same). */
export const WALK_BATCH = 512;

interface OpenDir {
  /** Its children's paths start with this. */
  prefix: Buffer;
  entries: DirEntry[];
  i: number;
  depth: number;
}

/**
 * The subtree's metadata depth first (parents before children, siblings
 * sorted), built from the same cached listings ReadDir serves: a walk
 * fills the shared cache, and a walk on another resolver (another host's
 * agent prefetching the same layer) reads it from Redis instead of the
 * store. Listings are fetched ahead of the walk, a window at a time.
 */
export async function* walkTree(
  meta: Metadata,
  view: ChainView,
  path: Buffer,
  maxDepth: number,
  includeLinkTargets: boolean,
): AsyncGenerator<(WalkEntry | WalkError)[]> {
  const { canon, rec } = await meta.node(view, path);
  const linkOf = async (p: Buffer, attr: Attr, known?: Buffer): Promise<Buffer | undefined> =>
    includeLinkTargets && isLinkMode(attr.mode) ? (known ?? (await meta.node(view, p)).rec.linkTarget) : undefined;
  const entry = (p: Buffer, attr: Attr, link: Buffer | undefined): WalkEntry => (link ? { path: p, attr, linkTarget: link } : { path: p, attr });
  const rootAttr = rec.attr!;
  let batch: (WalkEntry | WalkError)[] = [entry(canon, rootAttr, await linkOf(canon, rootAttr, rec.linkTarget))];
  if (!rec.directory) {
    yield batch;
    return;
  }
  const ahead = new ListingPrefetcher((dir) => meta.listing(view, dir));
  const descend = (depth: number): boolean => maxDepth === 0 || depth < maxDepth;
  // A damaged directory's listing is an error entry after its own; the walk goes on with its siblings.
  const open = async (dir: Buffer, depth: number): Promise<OpenDir> => {
    const prefix = childPrefix(dir);
    let entries: DirEntry[];
    try {
      entries = await ahead.take(dir);
    } catch (err) {
      if (depth === 1) throw err;
      batch.push({ path: dir, error: StrataError.from(err) });
      return { prefix, entries: [], i: 0, depth };
    }
    if (descend(depth)) ahead.want(entries.filter((e) => e.attr && isDirMode(e.attr.mode)).map((e) => childPath(prefix, e.name)));
    return { prefix, entries, i: 0, depth };
  };
  const stack = [await open(canon, 1)];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.i >= top.entries.length) {
      stack.pop();
      continue;
    }
    const e = top.entries[top.i++];
    const p = childPath(top.prefix, e.name);
    if (!e.attr) {
      // Listed, but its object cannot be read: reported in its place, with the errno its lookup gives.
      const error = e.error ? strataErrorFromInfo(e.error) : await meta.node(view, p).then(() => undefined, (err: unknown) => StrataError.from(err));
      if (error) batch.push({ path: p, error });
      continue;
    }
    batch.push(entry(p, e.attr, await linkOf(p, e.attr, meta.listedTarget(e))));
    if (batch.length >= WALK_BATCH) {
      yield batch;
      batch = [];
    }
    if (isDirMode(e.attr.mode) && descend(top.depth)) stack.push(await open(p, top.depth + 1));
  }
  if (batch.length > 0) yield batch;
}
