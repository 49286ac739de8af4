import { meter, metricsOn } from '@strata/telemetry';
import type { ProjectionOps } from '../projection-ops';
import type { RequestTracker } from './request-tracker';

/**
 * The resolver's gauges and counters, read from counters the code keeps
 * anyway (nothing is added to the hot path): cache lookups by tier and
 * result, bytes served, requests in flight, connected Session streams.
 */
export function registerResolverMetrics(o: { projection: ProjectionOps; tracker: RequestTracker; sessions: () => number; redis: boolean }): void {
  if (!metricsOn()) return;
  const m = meter();
  const lookups = m.createObservableCounter('strata.cache.requests', { description: 'metadata cache lookups by tier and result' });
  lookups.addCallback((r) => {
    const c = o.projection.counters;
    r.observe(c.hits.memory, { tier: 'in-process', result: 'hit' });
    r.observe(c.hits.redis + c.misses, { tier: 'in-process', result: 'miss' });
    if (o.redis) {
      r.observe(c.hits.redis, { tier: 'redis', result: 'hit' });
      r.observe(c.misses, { tier: 'redis', result: 'miss' });
    }
  });
  m.createObservableCounter('strata.resolver.bytes_served', { unit: 'By', description: 'file bytes sent to clients' }).addCallback((r) =>
    r.observe(o.projection.bytesServed),
  );
  m.createObservableGauge('strata.resolver.requests.in_flight', { description: 'requests being served' }).addCallback((r) => r.observe(o.tracker.inflight));
  m.createObservableGauge('strata.resolver.sessions', { description: 'open Session streams (connected agents)' }).addCallback((r) => r.observe(o.sessions()));
}
