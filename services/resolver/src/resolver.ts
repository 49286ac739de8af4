import type { ServerCredentials } from '@grpc/grpc-js';
import { openCache, type OpenedCache } from '@strata/cache';
import { Errno, GrpcCode, StrataError, errorMessage } from '@strata/errors';
import { CATALOG_DIR_NAME, Catalog, PolicyStore } from '@strata/layers';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '@strata/telemetry';
import { Authorizer } from './access/authorizer';
import { AuditLog } from '@strata/audit';
import { Chains } from './chains';
import { ImageOps } from './image-ops';
import { LayerChecker } from './layer-check';
import { checkLayerSource } from './layer-sources';
import type { DataListen } from './grpc/data-listen';
import type { ServerLimits } from './grpc/limits';
import { ResolverServer } from './grpc/server';
import { LayerOps } from './layer-ops';
import { MountRegistry } from './mount-registry';
import { RequestTracker } from './observability/request-tracker';
import { registerResolverMetrics } from './observability/resolver-metrics';
import { ProjectionOps } from './projection-ops';
import { readPrivileges, type Privileges } from './privileges';

export interface ResolverOptions {
  store: string;
  listen: string;
  /** TLS (grpc/tls.ts); plaintext without. */
  credentials?: ServerCredentials;
  redisUrl?: string;
  cacheMb: number;
  log: Logger;
  /** Mutual TLS: callers are known by their certificates, so the access policy is enforced. */
  enforceAccess?: boolean;
  /** --admin: identities that manage every layer and grant. */
  admins?: readonly string[];
  /** --audit-log; default <store>/.strata/audit.log. */
  auditLog?: string;
  /** What one client may hold (grpc/limits.ts DEFAULT_LIMITS when not given). */
  limits?: ServerLimits;
  /**
   * --unenforced-read-only: without mutual TLS on a store that enforces
   * access control, serve it but change nothing (otherwise such a start is
   * refused).
   */
  readOnly?: boolean;
  /** --data-listen; without it the environment's choice (grpc/data-listen.ts dataListenFromEnv). */
  dataListen?: DataListen;
}

/** Why a resolver that does not know its callers may not serve an enforced store; the start fails with it. */
export function unenforcedStartRefused(policyFile: string): StrataError {
  return new StrataError(
    Errno.EACCES,
    `this store enforces access control (${policyFile} has grants or was marked by a resolver with --tls-client-ca), and this resolver would serve it without knowing its callers: give --tls-cert, --tls-key and --tls-client-ca, or start it --unenforced-read-only to serve every layer to every caller and change nothing`,
    { code: GrpcCode.FAILED_PRECONDITION },
  );
}

/** This host's name as a file name (a pod's name in Kubernetes): what tells replicas' audit files apart. */
export function hostFileName(): string {
  return os.hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'localhost';
}

/**
 * The audit file when none is named: in the store, beside the catalog, one
 * per host — replicas sharing the store over NFS must not append to one
 * file (O_APPEND is not atomic there).
 */
export function defaultAuditLog(store: string): string {
  return path.join(path.resolve(store), CATALOG_DIR_NAME, 'audit', `${hostFileName()}.log`);
}

/** An --audit-log path with `{host}` standing for this host's name (one config file for every replica). */
export function auditLogPath(file: string): string {
  return file.replaceAll('{host}', hostFileName());
}

/** One resolver process: catalog, chains, cache and the gRPC server wired together. */
export class Resolver {
  readonly server: ResolverServer;
  readonly projection: ProjectionOps;
  readonly cache: OpenedCache;
  readonly audit: AuditLog;
  readonly authz: Authorizer;
  readonly policy: PolicyStore;
  port = 0;

  private constructor(
    private readonly options: ResolverOptions,
    catalog: Catalog,
    policy: PolicyStore,
    privileges: Privileges,
  ) {
    this.cache = openCache({ memoryBytes: options.cacheMb * 1024 * 1024, redisUrl: options.redisUrl, log: options.log });
    const chains = new Chains(catalog, privileges, options.log);
    this.projection = new ProjectionOps(chains, this.cache.cache, { log: options.log });
    const tracker = new RequestTracker(options.log);
    this.policy = policy;
    const auditFile = options.auditLog ? auditLogPath(options.auditLog) : defaultAuditLog(options.store);
    this.audit = AuditLog.open(auditFile, {
      onError: (err, file) => options.log.error({ event: 'resolver.audit_failed', file, err: errorMessage(err) }, `audit log ${file} cannot be written: ${errorMessage(err)}`),
    });
    this.authz = new Authorizer({ policy, catalog, admins: options.admins ?? [], enforced: options.enforceAccess === true, log: options.log });
    this.server = new ResolverServer({
      layers: new LayerOps(catalog, new MountRegistry(options.store)),
      images: new ImageOps(catalog, chains.sources),
      cacheState: () => {
        const redis = this.cache.redis;
        if (!redis) return { kind: 'in-process', reachable: true, detail: '' };
        const state = redis.client.status;
        return { kind: 'redis', reachable: state === 'ready', detail: state };
      },
      checker: new LayerChecker(catalog, chains.sources),
      projection: this.projection,
      policy,
      authz: this.authz,
      audit: this.audit,
      log: options.log,
      tracker,
      limits: options.limits,
    });
    registerResolverMetrics({ projection: this.projection, tracker, sessions: () => this.server.sessions.size, redis: options.redisUrl !== undefined });
  }

  static async start(options: ResolverOptions): Promise<Resolver> {
    const policy = new PolicyStore(options.store, { unauthenticated: options.enforceAccess !== true, readOnly: options.readOnly === true });
    const catalog = new Catalog(options.store, {
      checkSource: (chain) => checkLayerSource(options.store, chain),
      // Every replica sharing the store decides the same way, under the writer lock: an enforced store changes only through replicas that enforce.
      writeGuard: () => policy.refuseUnenforcedWrite(),
    });
    await catalog.init();
    await Resolver.claimStore(policy, options);
    const privileges = await readPrivileges();
    if (!privileges.readsTrustedXattrs || !privileges.readsEveryFile) {
      const missing = [!privileges.readsTrustedXattrs && 'CAP_SYS_ADMIN', !privileges.readsEveryFile && 'CAP_DAC_READ_SEARCH'].filter(Boolean).join(' and ');
      options.log.warn(
        { event: 'resolver.privileges', ...privileges, missing },
        `resolver runs without ${missing}: ${!privileges.readsTrustedXattrs ? 'chains merging dir: layers are refused (opaque markers are invisible); ' : ''}${!privileges.readsEveryFile ? 'layer files it may not read fail with FAILED_PRECONDITION' : ''}`.replace(/; $/, ''),
      );
    }
    const resolver = new Resolver(options, catalog, policy, privileges);
    resolver.port = await resolver.server.listen(options.listen, options.credentials, options.dataListen);
    await resolver.logAccessControl();
    return resolver;
  }

  /**
   * A replica with mutual TLS marks the store enforced (once, in its policy
   * file); one without it does not start on an enforced store unless told
   * to serve it read-only.
   */
  private static async claimStore(policy: PolicyStore, options: ResolverOptions): Promise<void> {
    if (options.enforceAccess === true) {
      try {
        if (await policy.markEnforced()) {
          options.log.warn({ event: 'resolver.store_enforced', policy: policy.file }, `store marked as enforcing access control in ${policy.file}: from now on only resolvers with --tls-client-ca change it, and those without refuse to start`);
        }
      } catch (err) {
        // An unreadable policy already counts as enforced everywhere; it is repaired by hand, never overwritten.
        options.log.error({ event: 'resolver.store_mark_failed', policy: policy.file, err: errorMessage(err) }, `could not mark the store as enforcing access control: ${errorMessage(err)}`);
      }
      return;
    }
    if (!(await policy.storeEnforced())) return;
    if (options.readOnly !== true) throw unenforcedStartRefused(policy.file);
    options.log.warn(
      { event: 'resolver.unenforced_read_only', policy: policy.file },
      'serving a store that enforces access control WITHOUT enforcing it (--unenforced-read-only): every caller reads every layer; layer and grant changes are refused',
    );
  }

  /** Once at start: whether the policy is enforced, by whom it is managed, where it and the audit log are. */
  private async logAccessControl(): Promise<void> {
    const index = await this.authz.index();
    const enforced = this.authz.enforced;
    // Unenforced is said at warn: anyone who reaches the port reads every layer (and, on an open store, changes it).
    this.options.log[enforced ? 'info' : 'warn'](
      {
        event: 'resolver.access_control',
        enforced,
        admins: [...this.authz.admins],
        policy: this.policy.file,
        generation: index.policy.generation,
        grants: index.policy.grants.length,
        audit: this.audit.file,
      },
      enforced
        ? 'access control enforced: callers are known by their client certificates'
        : 'access control not enforced (no --tls-client-ca): every caller may read and change every layer and grant',
    );
    if (!enforced && this.authz.admins.size > 0) {
      this.options.log.warn({ event: 'resolver.admin_unused' }, '--admin has no effect without --tls-client-ca: without client certificates every caller is an administrator');
    }
    if (enforced && this.authz.admins.size === 0 && index.policy.grants.length === 0) {
      this.options.log.warn({ event: 'resolver.no_admin' }, 'access control is enforced with no --admin and no grant: nobody can read or change anything');
    }
  }

  /** SIGHUP: the audit file is opened again (after a log rotation). */
  reopenAudit(): void {
    this.audit.reopen();
  }

  async stop(graceMs: number): Promise<void> {
    await this.server.drain(graceMs);
    this.projection.close();
    await this.cache.cache.close();
    await this.audit.close();
    this.options.log.info({ event: 'resolver.stopped', ...this.projection.counters, bytesServed: this.projection.bytesServed }, 'resolver stopped');
  }
}
