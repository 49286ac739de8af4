import type { ServerCredentials } from '@grpc/grpc-js';
import { openCache, type OpenedCache } from '@strata/cache';
import { Catalog } from '@strata/layers';
import type { Logger } from '@strata/telemetry';
import { Chains } from './chains';
import { checkLayerSource } from './layer-sources';
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
}

/** One resolver process: catalog, chains, cache and the gRPC server wired together. */
export class Resolver {
  readonly server: ResolverServer;
  readonly projection: ProjectionOps;
  readonly cache: OpenedCache;
  port = 0;

  private constructor(
    private readonly options: ResolverOptions,
    catalog: Catalog,
    privileges: Privileges,
  ) {
    this.cache = openCache({ memoryBytes: options.cacheMb * 1024 * 1024, redisUrl: options.redisUrl, log: options.log });
    this.projection = new ProjectionOps(new Chains(catalog, privileges), this.cache.cache);
    const tracker = new RequestTracker(options.log);
    this.server = new ResolverServer({ layers: new LayerOps(catalog, new MountRegistry(options.store)), projection: this.projection, log: options.log, tracker });
    registerResolverMetrics({ projection: this.projection, tracker, sessions: () => this.server.sessions.size, redis: options.redisUrl !== undefined });
  }

  static async start(options: ResolverOptions): Promise<Resolver> {
    const catalog = new Catalog(options.store, { checkSource: (chain) => checkLayerSource(options.store, chain) });
    await catalog.init();
    const privileges = await readPrivileges();
    if (!privileges.readsTrustedXattrs || !privileges.readsEveryFile) {
      const missing = [!privileges.readsTrustedXattrs && 'CAP_SYS_ADMIN', !privileges.readsEveryFile && 'CAP_DAC_READ_SEARCH'].filter(Boolean).join(' and ');
      options.log.warn(
        { event: 'resolver.privileges', ...privileges, missing },
        `resolver runs without ${missing}: ${!privileges.readsTrustedXattrs ? 'chains merging dir: layers are refused (opaque markers are invisible); ' : ''}${!privileges.readsEveryFile ? 'layer files it may not read fail with FAILED_PRECONDITION' : ''}`.replace(/; $/, ''),
      );
    }
    const resolver = new Resolver(options, catalog, privileges);
    resolver.port = await resolver.server.listen(options.listen, options.credentials);
    return resolver;
  }

  async stop(graceMs: number): Promise<void> {
    await this.server.drain(graceMs);
    this.projection.close();
    await this.cache.cache.close();
    this.options.log.info({ event: 'resolver.stopped', ...this.projection.counters, bytesServed: this.projection.bytesServed }, 'resolver stopped');
  }
}
