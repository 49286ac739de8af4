import { createHash } from 'node:crypto';

export interface ChainMember {
  layerId: number;
  generation: number;
}

/** Bumped when the meaning of a cached record changes incompatibly. */
const KEY_VERSION = 'strata:m1';

/**
 * A chain's cache namespace: every layer's id and generation, top first.
 * Any update to any layer of the chain bumps a generation and so moves the
 * chain to a fresh namespace: sealed entries never need invalidation.
 */
export function chainKey(chain: readonly ChainMember[]): string {
  const h = createHash('sha256');
  for (const l of chain) h.update(`${l.layerId}@${l.generation}/`);
  return `${KEY_VERSION}:${h.digest('base64url').slice(0, 22)}`;
}

/** What a key holds: a path's node, a directory listing, or a path's xattrs. */
export type RecordKind = 'n' | 'd' | 'x';

/**
 * A record's key; the path's bytes follow verbatim as latin1 chars. No hash
 * tag: only single-key commands are used, so a chain's keys spread over
 * every Cluster slot.
 */
export function recordKey(chain: string, kind: RecordKind, path: Buffer): string {
  return `${chain}:${kind}:${path.toString('latin1')}`;
}
