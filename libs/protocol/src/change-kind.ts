import { ChangeKind } from './gen/strata/v1/diff';

/** How a path differs between two layers, as the domain (traversal's diff, the client's Change) spells it. */
export type ChangeKindName = 'added' | 'modified' | 'deleted';

const TO_PROTO: Record<ChangeKindName, ChangeKind> = {
  added: ChangeKind.CHANGE_KIND_ADDED,
  modified: ChangeKind.CHANGE_KIND_MODIFIED,
  deleted: ChangeKind.CHANGE_KIND_DELETED,
};

export function changeKindToProto(kind: ChangeKindName): ChangeKind {
  return TO_PROTO[kind];
}

/**
 * UNSPECIFIED, or a kind from a newer resolver this build does not know,
 * reads as 'modified': the path is still reported as changed (a diff that
 * silently dropped it would be wrong), and 'modified' claims the least.
 */
export function changeKindFromProto(kind: ChangeKind): ChangeKindName {
  switch (kind) {
    case ChangeKind.CHANGE_KIND_ADDED:
      return 'added';
    case ChangeKind.CHANGE_KIND_DELETED:
      return 'deleted';
    default:
      return 'modified';
  }
}
