import type { ResolverState } from '@strata/agent-control';
import { meter, metricsOn } from '@strata/telemetry';
import type { DiskCacheStats } from '../data-cache/disk-cache';
import type { ChunkCache } from '../mount/chunk-cache';
import type { MountCounters } from '../mount/mount-fs';

const RESOLVER_STATES: readonly ResolverState['state'][] = ['connected', 'reconnecting', 'unreachable', 'idle'];
const MOUNT_STATES = ['serving', 'degraded', 'revoked', 'resolvers-away'] as const;

export interface AgentMetricSources {
  counters: MountCounters;
  mounts: () => number;
  /** The state of each live mount. */
  mountStates: () => string[];
  chunks: ChunkCache;
  inflight: () => number;
  resolvers: () => ResolverState[];
  dataCache: () => DiskCacheStats;
}

/** Observed from counters the agent keeps anyway: nothing is added to the FUSE hot path. */
export function registerAgentMetrics(o: AgentMetricSources): void {
  if (!metricsOn()) return;
  const m = meter();
  m.createObservableCounter('strata.cache.requests', { description: 'cache lookups by tier and result' }).addCallback((r) => {
    r.observe(o.counters.attrHits, { tier: 'agent', cache: 'attributes', result: 'hit' });
    r.observe(o.counters.attrMisses, { tier: 'agent', cache: 'attributes', result: 'miss' });
    r.observe(o.chunks.hits, { tier: 'agent', cache: 'data', result: 'hit' });
    r.observe(o.chunks.misses, { tier: 'agent', cache: 'data', result: 'miss' });
  });
  m.createObservableCounter('strata.fuse.bytes_read', { unit: 'By', description: 'file bytes returned to the kernel' }).addCallback((r) => r.observe(o.counters.bytesRead));
  m.createObservableGauge('strata.agent.requests.in_flight', { description: 'Session requests waiting for a resolver' }).addCallback((r) => r.observe(o.inflight()));
  m.createObservableGauge('strata.agent.mounts', { description: 'live mounts' }).addCallback((r) => r.observe(o.mounts()));
  // Every state is observed, 0 included: an alert on "degraded > 0" needs the series to exist while it is 0.
  m.createObservableGauge('strata.agent.mounts.by_state', { description: 'live mounts by state (serving, degraded, revoked, resolvers-away)' }).addCallback((r) => {
    const states = o.mountStates();
    for (const s of MOUNT_STATES) r.observe(states.filter((x) => x === s).length, { state: s });
  });
  m.createObservableGauge('strata.agent.resolver.connection', {
    description: "1 for each resolver's current connection state (connected, reconnecting, unreachable, idle), 0 for the others",
  }).addCallback((r) => {
    for (const res of o.resolvers()) for (const s of RESOLVER_STATES) r.observe(res.state === s ? 1 : 0, { resolver: res.address, state: s });
  });
  m.createObservableGauge('strata.agent.data_cache.bytes', { unit: 'By', description: 'bytes of sealed files held whole on disk' }).addCallback((r) => r.observe(o.dataCache().bytes));
  m.createObservableGauge('strata.agent.data_cache.files', { description: 'sealed files held whole on disk' }).addCallback((r) => r.observe(o.dataCache().files));
  m.createObservableGauge('strata.agent.chunk_cache.bytes', { unit: 'By', description: 'file data chunks held in memory' }).addCallback((r) => r.observe(o.chunks.usage.bytes));
}
