import { meter, metricsOn } from '@strata/telemetry';
import type { ChunkCache } from '../mount/chunk-cache';
import type { MountCounters } from '../mount/mount-fs';

/** Observed from counters the agent keeps anyway: nothing is added to the FUSE hot path. */
export function registerAgentMetrics(o: { counters: MountCounters; mounts: () => number; chunks: ChunkCache; inflight: () => number }): void {
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
}
