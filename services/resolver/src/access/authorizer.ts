import { LRUCache } from 'lru-cache';
import { Errno, GrpcCode, StrataError, isStrataError } from '@strata/errors';
import {
  CATALOG_FRESHNESS,
  FULL_ACCESS,
  NO_ACCESS,
  formatLayerRef,
  isHostIdentity,
  isImageScheme,
  normaliseFilesystemPath,
  parseSource,
  type Access,
  type Catalog,
  type Grant,
  type Layer,
  type LayerRef,
  type LayerSelector,
  type LayerTarget,
  type PolicyIndex,
  type PolicyStore,
} from '@strata/layers';
import type { Logger } from '@strata/telemetry';

export interface AuthorizerOptions {
  policy: PolicyStore;
  catalog: Catalog;
  /** --admin: identities that manage every layer and grant, whatever the policy says. */
  admins: readonly string[];
  /** Mutual TLS: callers are known, so the policy is enforced. Off: everyone may do everything. */
  enforced: boolean;
  log: Logger;
}

/** The one answer to a caller without a grant, for a layer that exists and one that does not alike. */
export function denied(identity: string, what: string): StrataError {
  return new StrataError(Errno.EACCES, `permission denied: ${identity} may not ${what}`, { code: GrpcCode.PERMISSION_DENIED });
}

export function unauthenticated(): StrataError {
  return new StrataError(Errno.EACCES, 'the resolver enforces access control and the client certificate names no identity (no URI SAN, no subject CN)', {
    code: GrpcCode.UNAUTHENTICATED,
  });
}

export function describeRef(ref: LayerRef): string {
  return formatLayerRef(ref);
}

/**
 * Decides what an identity may do, from the policy in the store, the
 * resolver's --admin identities and the catalog (a request names a layer by
 * id or by name; grants name it either way, so both are looked up).
 */
export class Authorizer {
  readonly enforced: boolean;
  readonly admins: ReadonlySet<string>;
  private readonly policy: PolicyStore;
  private readonly catalog: Catalog;
  private readonly log: Logger;
  /** A reference's layer, reused briefly as the chain views are: the catalog only refreshes every refreshMs anyway. */
  private readonly targets = new LRUCache<string, LayerTarget>({ max: 4096, ttl: CATALOG_FRESHNESS.referenceMs });
  private reportedProblem: string | undefined;

  constructor(options: AuthorizerOptions) {
    this.enforced = options.enforced;
    this.admins = new Set(options.admins);
    this.policy = options.policy;
    this.catalog = options.catalog;
    this.log = options.log;
  }

  isAdmin(identity: string | undefined): boolean {
    return !this.enforced || (identity !== undefined && this.admins.has(identity));
  }

  /** The current policy; a policy file that cannot be read grants nothing (said once per problem in the log). */
  async index(): Promise<PolicyIndex> {
    const snap = await this.policy.current();
    const message = snap.problem?.message;
    if (message !== this.reportedProblem) {
      this.reportedProblem = message;
      if (message) this.log.error({ event: 'resolver.policy_unreadable', err: message }, `access policy unreadable, only --admin identities are let in: ${message}`);
      else this.log.info({ event: 'resolver.policy_readable', file: this.policy.file }, 'access policy readable again');
    }
    return snap.index;
  }

  /** What the catalog knows of a referenced layer: id and name when it exists, the reference alone otherwise. */
  async target(ref: LayerRef): Promise<LayerTarget> {
    const key = 'id' in ref ? `i${ref.id}` : `n${ref.name}`;
    const known = this.targets.get(key);
    if (known) return known;
    let t: LayerTarget;
    try {
      const layer = await this.catalog.get(ref);
      t = { id: layer.layerId, name: layer.name };
    } catch (err) {
      // Missing or unreadable: judged by the reference alone, so the answer cannot tell which.
      if (!isStrataError(err)) throw err;
      t = 'id' in ref ? { id: ref.id } : { name: ref.name };
    }
    this.targets.set(key, t);
    return t;
  }

  /** The layer that has this name, or the name alone (a create or a rename to a free name). */
  targetOfName(name: string): Promise<LayerTarget> {
    return name === '' ? Promise.resolve({ name: '' }) : this.target({ name });
  }

  /**
   * What a caller may do on a layer. A certificate whose identity looks like
   * a host user's is given nothing: those identities are vouched for by
   * agents through CheckAccess, never presented by a caller.
   */
  async callerAccess(identity: string | undefined, target: LayerTarget): Promise<Access> {
    if (this.isAdmin(identity)) return FULL_ACCESS;
    if (identity === undefined || isHostIdentity(identity)) return NO_ACCESS;
    return (await this.index()).access(identity, target);
  }

  /** What the policy gives an identity (a host user's included), for CheckAccess. */
  async policyAccess(identity: string, target: LayerTarget): Promise<Access> {
    if (!this.enforced || this.admins.has(identity)) return FULL_ACCESS;
    return (await this.index()).access(identity, target);
  }

  /** Whether the caller may grant and revoke on this selector: admin on that layer, or on a prefix covering it. */
  async administers(identity: string | undefined, selector: LayerSelector): Promise<boolean> {
    if (this.isAdmin(identity)) return true;
    if (identity === undefined || isHostIdentity(identity)) return false;
    if ('prefix' in selector) return (await this.index()).administersPrefix(identity, selector.prefix);
    const target = 'id' in selector ? await this.target({ id: selector.id }) : await this.targetOfName(selector.name);
    return (await this.callerAccess(identity, target)).admin;
  }

  /** For ListLayers: which of these layers the caller may read. */
  async readable(identity: string | undefined): Promise<(layer: Layer) => boolean> {
    if (this.isAdmin(identity)) return () => true;
    if (identity === undefined || isHostIdentity(identity)) return () => false;
    const index = await this.index();
    return (layer) => index.access(identity, { id: layer.layerId, name: layer.name }).read;
  }

  /** For ListGrants: every grant for an --admin, else the caller's own and those it could revoke. */
  async visibleGrants(identity: string | undefined): Promise<Grant[]> {
    const index = await this.index();
    const all = index.policy.grants;
    if (this.isAdmin(identity)) return [...all];
    if (identity === undefined) return [];
    const out: Grant[] = [];
    for (const g of all) if (g.identity === identity || (await this.administers(identity, g.layer))) out.push(g);
    return out;
  }

  /**
   * Whether a layer with this source would show data of a layer the caller
   * may not read: a source (with its path) at, inside or above another
   * layer's. Without this, admin on one name would read any layer by
   * registering its folder again. A source that does not parse is left to
   * the catalog's own checks.
   */
  async overlapsUnreadable(identity: string | undefined, source: string, filesystemPath: string | undefined, self?: number): Promise<boolean> {
    if (this.isAdmin(identity)) return false;
    const mine = dataRoot(source, filesystemPath ?? '/');
    if (mine === undefined) return false;
    const mayRead = await this.readable(identity);
    const { layers } = await this.catalog.list();
    return layers.some((l) => {
      if (l.layerId === self || mayRead(l)) return false;
      const theirs = dataRoot(l.source, l.filesystemPath);
      return theirs !== undefined && (theirs === mine || theirs.startsWith(`${mine}/`) || mine.startsWith(`${theirs}/`));
    });
  }

  /** The layer a refusal speaks of, in the words of the request (never what the catalog holds). */
  refusal(identity: string, verb: string, ref: LayerRef): StrataError {
    return denied(identity, `${verb} ${describeRef(ref)}`);
  }
}

/** Where a layer's data is, relative to the store: an image file, or a folder and the path inside it. */
function dataRoot(source: string, filesystemPath: string): string | undefined {
  try {
    const parsed = parseSource(source);
    if (isImageScheme(parsed.scheme)) return parsed.relative;
    const inside = normaliseFilesystemPath(filesystemPath);
    return inside === '/' ? parsed.relative : `${parsed.relative}${inside}`;
  } catch {
    return undefined;
  }
}
