import { StrataError } from '@strata/errors';
import { validateName } from './validate';

/**
 * The access policy kept with the catalog: grants of `read` or `admin` on
 * layers named by id, by name or by a name prefix, to identities (a
 * certificate's URI SAN or CN, or a host user an agent vouches for).
 * Matching is here, pure, so that every resolver decides the same way.
 */

export const PERMISSIONS = ['read', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** The layers a grant covers: one id, one name, or every name with a prefix (`vm-*`; `*` is every layer). */
export type LayerSelector = { id: number } | { name: string } | { prefix: string };

export interface Grant {
  identity: string;
  permission: Permission;
  layer: LayerSelector;
  /** The identity that made the grant ('' when access control was off). */
  grantedBy: string;
  createTimeMs: number;
}

export interface Policy {
  /** 0 before the first grant; bumped by every change. */
  generation: number;
  updateTimeMs: number;
  grants: readonly Grant[];
  /**
   * Set (once, by the first resolver that enforces the policy) when a
   * replica with mutual TLS opened the store: from then on the store is
   * enforced even before its first grant, and no replica that cannot tell
   * its callers apart may change it.
   */
  enforcedSinceMs?: number;
}

export const EMPTY_POLICY: Policy = { generation: 0, updateTimeMs: 0, grants: [] };

/** What is known of the layer a request names: both id and name when it exists, only the reference otherwise. */
export interface LayerTarget {
  id?: number;
  name?: string;
}

export interface Access {
  read: boolean;
  admin: boolean;
}

export const NO_ACCESS: Access = Object.freeze({ read: false, admin: false });
export const FULL_ACCESS: Access = Object.freeze({ read: true, admin: true });

/** Identities of host users, vouched for by the agent of their host rather than by a certificate. */
export const HOST_USER_PREFIX = 'unix-user:';
export const HOST_GROUP_PREFIX = 'unix-group:';
/** A grant to this identity applies to every host user. */
export const EVERY_HOST_USER = 'unix-user:*';

const MAX_IDENTITY = 1024;

export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}

export function isHostIdentity(identity: string): boolean {
  return identity.startsWith(HOST_USER_PREFIX) || identity.startsWith(HOST_GROUP_PREFIX);
}

/** An identity as grants name it: 1 to 1024 characters, no control characters, no surrounding spaces. */
export function validateIdentity(identity: string): void {
  if (identity === '' || identity.length > MAX_IDENTITY) throw StrataError.invalid(`identity must be 1 to ${MAX_IDENTITY} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(identity)) throw StrataError.invalid(`identity ${JSON.stringify(identity)} contains a control character`);
  if (identity.trim() !== identity) throw StrataError.invalid(`identity ${JSON.stringify(identity)} begins or ends with white space`);
  if (isHostIdentity(identity) && identity.slice(identity.indexOf(':') + 1) === '') throw StrataError.invalid(`identity "${identity}" names no user or group`);
}

const NAME_CHARS = /^[A-Za-z0-9._-]*$/;

export function validateSelector(s: LayerSelector): void {
  if ('id' in s) {
    if (!Number.isSafeInteger(s.id) || s.id <= 0) throw StrataError.invalid('a layer id in a grant must be > 0');
  } else if ('name' in s) {
    if (s.name === '') throw StrataError.invalid('a layer name in a grant must not be empty');
    validateName(s.name);
  } else if (!NAME_CHARS.test(s.prefix) || s.prefix.length > 128) {
    throw StrataError.invalid(`"${s.prefix}*" is not a layer name prefix (characters A-Z a-z 0-9 . _ - then *)`);
  }
}

/** "42" is an id, "vm-*" a prefix (and "*" every layer), anything else a name: what operators type. */
export function parseLayerSelector(text: string): LayerSelector {
  let s: LayerSelector;
  if (text.endsWith('*')) s = { prefix: text.slice(0, -1) };
  else if (/^[0-9]+$/.test(text)) s = { id: Number(text) };
  else s = { name: text };
  validateSelector(s);
  return s;
}

export function formatLayerSelector(s: LayerSelector): string {
  if ('id' in s) return String(s.id);
  if ('name' in s) return s.name;
  return `${s.prefix}*`;
}

export function sameSelector(a: LayerSelector, b: LayerSelector): boolean {
  if ('id' in a) return 'id' in b && a.id === b.id;
  if ('name' in a) return 'name' in b && a.name === b.name;
  return 'prefix' in b && a.prefix === b.prefix;
}

/** Whether the selector covers that layer. A prefix grant covers a layer known only by id when the prefix is empty (`*`). */
export function selectorMatches(s: LayerSelector, target: LayerTarget): boolean {
  if ('id' in s) return target.id === s.id;
  if ('name' in s) return target.name !== undefined && target.name === s.name;
  return s.prefix === '' || (target.name !== undefined && target.name !== '' && target.name.startsWith(s.prefix));
}

/** The identities whose grants apply to a caller: itself, and every-host-user for a host user. */
export function identitiesFor(identity: string): string[] {
  return identity.startsWith(HOST_USER_PREFIX) && identity !== EVERY_HOST_USER ? [identity, EVERY_HOST_USER] : [identity];
}

export function sameGrant(a: Pick<Grant, 'identity' | 'permission' | 'layer'>, b: Pick<Grant, 'identity' | 'permission' | 'layer'>): boolean {
  return a.identity === b.identity && a.permission === b.permission && sameSelector(a.layer, b.layer);
}

/** A policy read for deciding: grants by identity. */
export class PolicyIndex {
  private readonly byIdentity = new Map<string, Grant[]>();

  constructor(readonly policy: Policy) {
    for (const g of policy.grants) {
      const list = this.byIdentity.get(g.identity);
      if (list) list.push(g);
      else this.byIdentity.set(g.identity, [g]);
    }
  }

  /** The grants that apply to an identity (a host user's include those to every host user). */
  grantsOf(identity: string): Grant[] {
    return identitiesFor(identity).flatMap((i) => this.byIdentity.get(i) ?? []);
  }

  /** What the identity may do on the layer; admin implies read. */
  access(identity: string, target: LayerTarget): Access {
    let read = false;
    for (const g of this.grantsOf(identity)) {
      if (!selectorMatches(g.layer, target)) continue;
      if (g.permission === 'admin') return FULL_ACCESS;
      read = true;
    }
    return read ? { read: true, admin: false } : NO_ACCESS;
  }

  /**
   * Whether the identity administers every layer a prefix covers (to grant
   * or revoke on that prefix): an admin grant on a shorter or equal prefix.
   */
  administersPrefix(identity: string, prefix: string): boolean {
    return this.grantsOf(identity).some((g) => g.permission === 'admin' && 'prefix' in g.layer && prefix.startsWith(g.layer.prefix));
  }
}

/** The policy with the grant added; unchanged (same object) when it was there already. */
export function addGrant(policy: Policy, grant: Grant, now: number): { policy: Policy; grant: Grant; changed: boolean } {
  const existing = policy.grants.find((g) => sameGrant(g, grant));
  if (existing) return { policy, grant: existing, changed: false };
  return { policy: { ...policy, generation: policy.generation + 1, updateTimeMs: now, grants: [...policy.grants, grant] }, grant, changed: true };
}

/** The policy without the grant; unchanged (same object) when there was none. */
export function removeGrant(policy: Policy, which: Pick<Grant, 'identity' | 'permission' | 'layer'>, now: number): { policy: Policy; changed: boolean } {
  const grants = policy.grants.filter((g) => !sameGrant(g, which));
  if (grants.length === policy.grants.length) return { policy, changed: false };
  return { policy: { ...policy, generation: policy.generation + 1, updateTimeMs: now, grants }, changed: true };
}

/**
 * Whether a store's policy is enforced: a replica with mutual TLS marked it,
 * or it holds grants (grants someone meant to be kept). Such a store is
 * changed only through replicas that know their callers.
 */
export function isEnforcedPolicy(policy: Policy): boolean {
  return policy.enforcedSinceMs !== undefined || policy.grants.length > 0;
}

/**
 * The policy marked enforced; unchanged (same object) when it was. The
 * generation stays: it counts changes of grants, which callers hold for
 * --expect-generation, and no grant changed.
 */
export function markEnforced(policy: Policy, now: number): { policy: Policy; changed: boolean } {
  if (policy.enforcedSinceMs !== undefined) return { policy, changed: false };
  return { policy: { ...policy, enforcedSinceMs: now }, changed: true };
}
