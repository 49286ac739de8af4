import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Errno, GrpcCode, StrataError, isStrataError } from '@strata/errors';
import { writeFileAtomic } from '@strata/posix';
import { withCatalogLock } from './catalog-lock';
import {
  EMPTY_POLICY,
  type Grant,
  type LayerSelector,
  type Permission,
  type Policy,
  PolicyIndex,
  addGrant,
  isEnforcedPolicy,
  markEnforced,
  removeGrant,
  validateIdentity,
  validateSelector,
} from './policy';
import { parsePolicyFile, serialisePolicyFile } from './policy-file';
import { catalogDir } from './store-layout';

/** How often the policy file is looked at (one stat): a revoked grant stops open streams well within a second. */
export const POLICY_REFRESH_MS = 250;

export const POLICY_FILE_NAME = 'policy.json';

export function policyFile(storeRoot: string): string {
  return path.join(catalogDir(storeRoot), POLICY_FILE_NAME);
}

/** The policy as last read; `problem` when the file is unreadable or malformed (then it grants nothing). */
export interface PolicySnapshot {
  index: PolicyIndex;
  problem?: StrataError;
}

export interface PolicyStoreOptions {
  refreshMs?: number;
  now?: () => number;
  /**
   * This process does not know who asks for its changes (a resolver without
   * mutual TLS): it may change an enforced store neither here nor in the
   * catalog (refuseUnenforcedWrite). Default false: the caller vouches.
   */
  unauthenticated?: boolean;
  /** Nothing is changed through this process, catalog or policy (a resolver started --unenforced-read-only). */
  readOnly?: boolean;
}

function readOnlyRefused(): StrataError {
  return new StrataError(Errno.EROFS, 'this resolver serves the store read-only (--unenforced-read-only): change layers and grants through a resolver with --tls-client-ca', {
    code: GrpcCode.PERMISSION_DENIED,
  });
}

/** The refusal of a change through a process that cannot tell its callers apart, once the store is enforced. */
export function unenforcedWriteRefused(file: string): StrataError {
  return new StrataError(
    Errno.EACCES,
    `this store enforces access control (${file} has grants or was marked by a resolver with --tls-client-ca), and this resolver does not know its callers (no --tls-client-ca): layers and grants are changed only through a resolver with mutual TLS, by an authenticated administrator`,
    { code: GrpcCode.PERMISSION_DENIED },
  );
}

export interface GrantInput {
  identity: string;
  permission: Permission;
  layer: LayerSelector;
  grantedBy: string;
  /** When set (non-zero), the change fails unless the policy is still at this generation. */
  expectedGeneration?: number;
}

interface Stamp {
  ino: number;
  mtimeMs: number;
  size: number;
}

const sameStamp = (a: Stamp | undefined, b: Stamp | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.size === b.size);

/**
 * The access policy, one JSON file beside the layer catalog in the store, so
 * every resolver sharing the store enforces the same one. Readers never
 * lock (the file is replaced by rename) and look at it at most every
 * refreshMs; writers take the catalog's lock, re-read the file under it and
 * only then change it, so two replicas granting at once both land.
 */
export class PolicyStore {
  readonly file: string;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private snapshot: PolicySnapshot = { index: new PolicyIndex(EMPTY_POLICY) };
  private stamp: Stamp | undefined;
  private checkedAt = -Infinity;
  private loading: Promise<void> | undefined;
  readonly unauthenticated: boolean;
  readonly readOnly: boolean;

  constructor(
    readonly storeRoot: string,
    options: PolicyStoreOptions = {},
  ) {
    this.file = policyFile(path.resolve(storeRoot));
    this.refreshMs = options.refreshMs ?? POLICY_REFRESH_MS;
    this.now = options.now ?? Date.now;
    this.unauthenticated = options.unauthenticated ?? false;
    this.readOnly = options.readOnly ?? false;
  }

  /**
   * Whether the store is enforced, read now (not from the snapshot): a
   * policy file that cannot be read counts as enforced, since it may hold
   * grants.
   */
  async storeEnforced(): Promise<boolean> {
    await this.refresh(true);
    return this.snapshot.problem !== undefined || isEnforcedPolicy(this.snapshot.index.policy);
  }

  /**
   * For writers of the catalog, holding its lock (the policy shares it, so
   * the answer cannot change before they write): throws when this process
   * may not change an enforced store.
   */
  async refuseUnenforcedWrite(): Promise<void> {
    if (this.readOnly) throw readOnlyRefused();
    if (!this.unauthenticated) return;
    if (await this.storeEnforced()) throw unenforcedWriteRefused(this.file);
  }

  /** Marks the store enforced (a resolver with mutual TLS, at its start); a no-op when it is. */
  async markEnforced(): Promise<boolean> {
    if (this.unauthenticated) throw new TypeError('an unauthenticated PolicyStore cannot mark the store enforced');
    const { changed } = await this.change(undefined, (p) => markEnforced(p, this.now()));
    return changed;
  }

  /** The current policy, re-read when the file changed (looked at no more often than every refreshMs). */
  async current(): Promise<PolicySnapshot> {
    if (this.now() - this.checkedAt >= this.refreshMs) await this.refresh(false);
    return this.snapshot;
  }

  async grant(input: GrantInput): Promise<{ policy: Policy; grant: Grant; changed: boolean }> {
    validateIdentity(input.identity);
    validateSelector(input.layer);
    return this.change(input.expectedGeneration, (p) =>
      addGrant(p, { identity: input.identity, permission: input.permission, layer: input.layer, grantedBy: input.grantedBy, createTimeMs: this.now() }, this.now()),
    );
  }

  async revoke(input: Omit<GrantInput, 'grantedBy'>): Promise<{ policy: Policy; changed: boolean }> {
    validateIdentity(input.identity);
    validateSelector(input.layer);
    return this.change(input.expectedGeneration, (p) => removeGrant(p, input, this.now()));
  }

  private async change<R extends { policy: Policy; changed: boolean }>(expected: number | undefined, fn: (p: Policy) => R): Promise<R> {
    if (this.readOnly) throw readOnlyRefused();
    return withCatalogLock(path.dirname(this.file), async () => {
      await this.refresh(true);
      // A policy file nobody can read is repaired by hand, never overwritten: grants in it would be lost.
      if (this.snapshot.problem) throw this.snapshot.problem;
      const before = this.snapshot.index.policy;
      if (this.unauthenticated && isEnforcedPolicy(before)) throw unenforcedWriteRefused(this.file);
      if (expected !== undefined && expected !== 0 && expected !== before.generation) {
        throw new StrataError(Errno.EBUSY, `the policy is at generation ${before.generation}, not ${expected}: it changed since you read it`, { code: GrpcCode.FAILED_PRECONDITION });
      }
      const result = fn(before);
      if (!result.changed) return result;
      await writeFileAtomic(this.file, serialisePolicyFile(result.policy));
      this.snapshot = { index: new PolicyIndex(result.policy) };
      this.stamp = await this.stat();
      this.checkedAt = this.now();
      return result;
    });
  }

  private async refresh(force: boolean): Promise<void> {
    if (this.loading && !force) return this.loading;
    const run = this.reload(force);
    this.loading = run;
    try {
      await run;
    } finally {
      if (this.loading === run) this.loading = undefined;
    }
  }

  private async stat(): Promise<Stamp | undefined> {
    try {
      const st = await fs.stat(this.file);
      return { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private async reload(force: boolean): Promise<void> {
    const startedAt = this.now();
    try {
      const stamp = await this.stat();
      if (!force && sameStamp(stamp, this.stamp) && this.checkedAt > -Infinity) return;
      if (stamp === undefined) {
        this.snapshot = { index: new PolicyIndex(EMPTY_POLICY) };
      } else {
        const text = await fs.readFile(this.file, 'utf8');
        this.snapshot = { index: new PolicyIndex(parsePolicyFile(text, this.file)) };
      }
      this.stamp = stamp;
    } catch (err) {
      const problem = isStrataError(err) ? err : StrataError.from(err, `policy file ${this.file}`);
      this.snapshot = { index: new PolicyIndex(EMPTY_POLICY), problem };
      // Read again at the next look: the operator may be mid-repair.
      this.stamp = undefined;
    } finally {
      this.checkedAt = startedAt;
    }
  }
}
