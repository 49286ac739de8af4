import { PerformanceObserver, monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { Meter } from '@opentelemetry/api';
import type { BuildInfo } from './version';

let started: { loop: IntervalHistogram; gc: PerformanceObserver } | undefined;

/** V8's GC kinds (perf_hooks constants), by the names the metric uses. */
const GC_KINDS: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };

/**
 * The process as a whole, for both services: which build it is
 * (strata_build_info, always 1, the version in its labels), memory (heap,
 * RSS), event-loop delay and garbage collection. Read at collection time;
 * the only work between collections is node's own loop-delay sampling and
 * one callback per GC.
 */
export function registerProcessMetrics(m: Meter, info: BuildInfo): void {
  if (started) return;
  m.createObservableGauge('strata.build_info', { description: 'which build runs: always 1, with version, commit and node as labels' }).addCallback((r) =>
    r.observe(1, { version: info.version, commit: info.commit ?? 'unknown', node: info.node }),
  );
  m.createObservableGauge('strata.process.memory.bytes', { unit: 'By', description: 'process memory by kind: rss, heap_used, heap_total, external, array_buffers' }).addCallback((r) => {
    const u = process.memoryUsage();
    r.observe(u.rss, { kind: 'rss' });
    r.observe(u.heapUsed, { kind: 'heap_used' });
    r.observe(u.heapTotal, { kind: 'heap_total' });
    r.observe(u.external, { kind: 'external' });
    r.observe(u.arrayBuffers, { kind: 'array_buffers' });
  });
  m.createObservableGauge('strata.process.heap_limit.bytes', { unit: 'By', description: 'V8 heap size limit' }).addCallback((r) => r.observe(getHeapStatistics().heap_size_limit));
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  // Delays since the previous collection: a stall shows in the scrape after it, not averaged away over days.
  m.createObservableGauge('strata.process.event_loop.delay.seconds', { unit: 's', description: 'event-loop delay since the previous collection, by stat: p50, p99, max' }).addCallback((r) => {
    if (loop.count === 0) return;
    r.observe(loop.percentile(50) / 1e9, { stat: 'p50' });
    r.observe(loop.percentile(99) / 1e9, { stat: 'p99' });
    r.observe(loop.max / 1e9, { stat: 'max' });
    loop.reset();
  });
  const gcTime = m.createCounter('strata.process.gc.duration.seconds', { unit: 's', description: 'time spent in garbage collection, by kind' });
  const gcCount = m.createCounter('strata.process.gc.collections', { description: 'garbage collections, by kind' });
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = GC_KINDS[((e as { detail?: { kind?: number } }).detail)?.kind ?? 0] ?? 'other';
      gcTime.add(e.duration / 1000, { kind });
      gcCount.add(1, { kind });
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  m.createObservableCounter('strata.process.uptime.seconds', { unit: 's', description: 'seconds since the process started' }).addCallback((r) => r.observe(process.uptime()));
  started = { loop, gc };
}
