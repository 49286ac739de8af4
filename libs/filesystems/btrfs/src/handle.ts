import { Errno, StrataError } from '@strata/errors';

/**
 * A handle packs (tree id, objectid) into one safe integer:
 * tree × 2^32 + objectid. Subvolume ids below 2^21 and objectids below 2^32
 * fit (2^21 × 2^32 = 2^53); anything larger is EOVERFLOW. Tree 0 (never a
 * subvolume id) holds the kernel's empty-subvolume stubs, numbered per open.
 */
export const OBJECTID_LIMIT = 2 ** 32;
export const TREE_LIMIT = 2 ** 21;
export const STUB_TREE = 0;

export interface HandleParts {
  tree: number;
  objectid: number;
}

export function encodeHandle(tree: bigint | number, objectid: bigint | number): number {
  const t = Number(tree);
  const o = Number(objectid);
  if (BigInt(tree) >= BigInt(TREE_LIMIT)) throw new StrataError(Errno.EOVERFLOW, `btrfs: subvolume id ${tree} is too large for a handle (limit 2^21)`);
  if (BigInt(objectid) >= BigInt(OBJECTID_LIMIT)) throw new StrataError(Errno.EOVERFLOW, `btrfs: inode number ${objectid} in subvolume ${tree} is too large for a handle (limit 2^32)`);
  return t * OBJECTID_LIMIT + o;
}

export function decodeHandle(handle: number): HandleParts {
  if (!Number.isSafeInteger(handle) || handle < 0) throw StrataError.invalid(`btrfs: ${handle} is not a handle`);
  return { tree: Math.floor(handle / OBJECTID_LIMIT), objectid: handle % OBJECTID_LIMIT };
}
