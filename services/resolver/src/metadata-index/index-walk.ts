import type { Attr } from '@strata/protocol';
import type { WalkEntry, WalkError } from '@strata/traversal';
import { WALK_BATCH } from '../projection/tree-walk';
import { type ParsedIndex, attrAt, entryAt, isDamaged, nameAt } from './index-format';

const SLASH = Buffer.from('/');

/**
 * The entry at a canonical path (its components), following the index's
 * nesting: siblings are scanned, subtrees skipped whole. Undefined when the
 * index does not hold the path literally (absent, below a non-directory, or
 * through a symlink): the caller walks by traversal, which knows the answer.
 */
export function findPath(idx: ParsedIndex, parts: readonly Buffer[]): number | undefined {
  let pos = 0;
  for (const want of parts) {
    if (!idx.dir[pos]) return undefined;
    let found = -1;
    // end[j] > j always (parseIndex), so the scan moves forward and stops at the directory's end.
    for (let j = pos + 1; j < idx.end[pos]; j = idx.end[j]) {
      if (nameAt(idx, j).equals(want)) {
        found = j;
        break;
      }
    }
    if (found < 0) return undefined;
    pos = found;
  }
  return pos;
}

/**
 * A Walk answered from an index: the same entries, in the same batches, as
 * walkTree gives for the subtree at `root` (a batch closes after an entry
 * with attributes once it holds WALK_BATCH; the root and damaged entries
 * never close one).
 */
export function* walkIndex(
  idx: ParsedIndex,
  root: number,
  canon: Buffer,
  maxDepth: number,
  includeLinkTargets: boolean,
): Generator<(WalkEntry | WalkError)[]> {
  let batch: (WalkEntry | WalkError)[] = [entryAt(idx, root, canon, includeLinkTargets)];
  if (!idx.dir[root]) {
    yield batch;
    return;
  }
  const base = idx.depth[root];
  // Path prefixes of the open directories by depth below the root ("/" is the empty prefix).
  const prefix: Buffer[] = [canon.length === 1 ? Buffer.alloc(0) : canon];
  for (let i = root + 1; i < idx.end[root]; ) {
    const rel = idx.depth[i] - base;
    if (maxDepth !== 0 && rel > maxDepth) {
      i = idx.end[i];
      continue;
    }
    const path = Buffer.concat([prefix[rel - 1], SLASH, nameAt(idx, i)]);
    const e = entryAt(idx, i, path, includeLinkTargets);
    batch.push(e);
    if (!('error' in e)) {
      if (batch.length >= WALK_BATCH) {
        yield batch;
        batch = [];
      }
      if (idx.dir[i]) prefix[rel] = path;
    }
    i++;
  }
  if (batch.length > 0) yield batch;
}

/**
 * A directory's entries as ReadDir lists them (names sorted, attributes),
 * or undefined when one of them is damaged: the traversal answers those,
 * with the errno and message its lookup gives.
 */
export function childrenOf(idx: ParsedIndex, dir: number): { name: Buffer; attr: Attr }[] | undefined {
  const out: { name: Buffer; attr: Attr }[] = [];
  for (let j = dir + 1; j < idx.end[dir]; j = idx.end[j]) {
    if (isDamaged(idx, j)) return undefined;
    out.push({ name: Buffer.from(nameAt(idx, j)), attr: attrAt(idx, j) });
  }
  return out;
}
