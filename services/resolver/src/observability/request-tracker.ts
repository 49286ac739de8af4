import { isStrataError } from '@strata/errors';
import { SpanKind, extractTraceContext, latencyHistogram, metricsOn, traced, tracingOn, type Histogram, type Logger } from '@strata/telemetry';

export type TraceCarrier = Record<string, string | string[] | Buffer | undefined>;

/**
 * Every request the resolver serves, unary or Session: a server span that
 * continues the caller's trace (W3C trace context from gRPC metadata or the
 * Session message), a latency point by method, and the in-flight count.
 * Failures are logged at debug inside the span, so the line carries the
 * trace id. With telemetry off it only counts and logs.
 */
export class RequestTracker {
  inflight = 0;
  private readonly latency: Histogram | undefined;

  constructor(private readonly log: Logger) {
    this.latency = metricsOn() ? latencyHistogram('strata.resolver.request.duration', 'resolver request latency by method') : undefined;
  }

  run<T>(method: string, carrier: TraceCarrier | undefined, fn: () => Promise<T>): Promise<T> {
    this.inflight++;
    return traced(
      {
        span: method,
        attributes: { 'rpc.system': 'grpc', 'rpc.method': method },
        kind: SpanKind.SERVER,
        parent: tracingOn() ? extractTraceContext(carrier ?? {}) : undefined,
        latency: this.latency,
        labels: { method },
        onFailure: (err) =>
          this.log.debug(
            { event: 'request.failed', method, errno: isStrataError(err) ? err.errnoName : 'EIO', err: err instanceof Error ? err.message : String(err) },
            'request failed',
          ),
      },
      fn,
    ).finally(() => this.inflight--);
  }
}
