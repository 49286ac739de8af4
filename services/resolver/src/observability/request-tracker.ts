import { isStrataError } from '@strata/errors';
import { SpanKind, extractTraceContext, inSpan, latencyHistogram, metricsOn, tracingOn, type Histogram, type Logger } from '@strata/telemetry';

export type TraceCarrier = Record<string, string | string[] | Buffer | undefined>;

/**
 * Every request the resolver serves, unary or Session: a server span that
 * continues the caller's trace (W3C trace context from gRPC metadata or the
 * Session message), a latency point by method, and the in-flight count.
 * With telemetry off it only counts.
 */
export class RequestTracker {
  inflight = 0;
  private readonly latency: Histogram | undefined;

  constructor(private readonly log: Logger) {
    this.latency = metricsOn() ? latencyHistogram('strata.resolver.request.duration', 'resolver request latency by method') : undefined;
  }

  run<T>(method: string, carrier: TraceCarrier | undefined, fn: () => Promise<T>): Promise<T> {
    this.inflight++;
    const started = this.latency ? performance.now() : 0;
    // Failures are logged (at debug) inside the span, so the line carries the trace id.
    const logged = (): Promise<T> =>
      fn().catch((err: unknown) => {
        this.log.debug({ event: 'request.failed', method, errno: isStrataError(err) ? err.errnoName : 'EIO', err: err instanceof Error ? err.message : String(err) }, 'request failed');
        throw err;
      });
    const work = tracingOn()
      ? inSpan(method, { 'rpc.system': 'grpc', 'rpc.method': method }, logged, { kind: SpanKind.SERVER, parent: extractTraceContext(carrier ?? {}) })
      : logged();
    return work.finally(() => {
      this.inflight--;
      this.latency?.record(performance.now() - started, { method });
    });
  }
}
