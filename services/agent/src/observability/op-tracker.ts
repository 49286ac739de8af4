import { StrataError } from '@strata/errors';
import { SpanKind, latencyHistogram, metricsOn, traced, tracingOn, type Histogram, type Logger } from '@strata/telemetry';

/** The agent's one FUSE latency histogram (undefined when metrics are off); every mount's tracker records into it. */
export function fuseLatencyHistogram(): Histogram | undefined {
  return metricsOn() ? latencyHistogram('strata.fuse.op.duration', 'FUSE operation latency by op, as the agent answers it') : undefined;
}

/**
 * FUSE operations as telemetry: a span per operation (op, layer, path) that
 * the resolver's spans join through the Session request's trace context,
 * and a latency point by op. Failures are logged at debug inside the span.
 * Off, it calls straight through.
 */
export class OpTracker {
  private readonly tracing = tracingOn();

  constructor(
    private readonly layerId: number,
    private readonly latency: Histogram | undefined,
    private readonly log: Logger,
  ) {}

  get active(): boolean {
    return this.tracing || this.latency !== undefined;
  }

  run<T>(op: string, path: string, work: () => Promise<T>): Promise<T> {
    if (!this.active) return work();
    return traced(
      {
        span: `fuse.${op}`,
        attributes: () => ({ 'strata.op': op, 'strata.layer': this.layerId, 'strata.path': path }),
        kind: SpanKind.SERVER,
        latency: this.latency,
        labels: { op },
        onFailure: (err) => this.log.debug({ event: 'fuse.op.failed', op, path, errno: StrataError.from(err).errnoName }, 'operation failed'),
      },
      work,
    );
  }

  /** An answer given from the cache without waiting (no span: nothing left the agent). */
  instant(op: string): void {
    this.latency?.record(0, { op });
  }
}
