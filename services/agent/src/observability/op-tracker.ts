import { isStrataError } from '@strata/errors';
import { SpanKind, inSpan, latencyHistogram, metricsOn, tracingOn, type Histogram, type Logger } from '@strata/telemetry';

/**
 * FUSE operations as telemetry: a span per operation (op, layer, path) that
 * the resolver's spans join through the Session request's trace context,
 * and a latency point by op. Off, it calls straight through.
 */
export class OpTracker {
  private readonly latency: Histogram | undefined;
  private readonly tracing: boolean;

  constructor(
    private readonly layerId: number,
    private readonly log: Logger,
  ) {
    this.latency = metricsOn() ? latencyHistogram('strata.fuse.op.duration', 'FUSE operation latency by op, as the agent answers it') : undefined;
    this.tracing = tracingOn();
  }

  get active(): boolean {
    return this.tracing || this.latency !== undefined;
  }

  run<T>(op: string, path: string, work: () => Promise<T>): Promise<T> {
    if (!this.active) return work();
    const started = performance.now();
    // Failures are logged (at debug) inside the span, so the line carries the trace id.
    const logged = (): Promise<T> =>
      work().catch((err: unknown) => {
        this.log.debug({ event: 'fuse.op.failed', op, path, errno: isStrataError(err) ? err.errnoName : 'EIO' }, 'operation failed');
        throw err;
      });
    const w = this.tracing
      ? inSpan(`fuse.${op}`, () => ({ 'strata.op': op, 'strata.layer': this.layerId, 'strata.path': path }), logged, { kind: SpanKind.SERVER })
      : logged();
    return w.finally(() => this.latency?.record(performance.now() - started, { op }));
  }

  /** An answer given from the cache without waiting (no span: nothing left the agent). */
  instant(op: string): void {
    this.latency?.record(0, { op });
  }
}
