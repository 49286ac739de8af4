import { StrataError } from '@strata/errors';
import { SpanKind, latencyHistogram, meter, metricsOn, traced, tracingOn, type Histogram, type Logger } from '@strata/telemetry';
import { MountHealth } from './mount-health';

/** Counts FUSE operations that ended in an error, by op and errno name (ENOENT included: it is an answer, but a rate worth seeing). */
export interface FuseErrorCounter {
  add(n: number, labels: { op: string; errno: string }): void;
}

/** The agent's one counter of FUSE errors (undefined when metrics are off). */
export function fuseErrorCounter(): FuseErrorCounter | undefined {
  return metricsOn() ? meter().createCounter('strata.fuse.errors', { description: 'FUSE operations answered with an error, by op and errno' }) : undefined;
}

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
    /** The mount's health: every operation that reaches JavaScript tells it how it ended. */
    readonly health: MountHealth = new MountHealth(),
    private readonly errors?: FuseErrorCounter,
  ) {}

  get active(): boolean {
    return this.tracing || this.latency !== undefined;
  }

  run<T>(op: string, path: string, work: () => Promise<T>): Promise<T> {
    return this.traced(op, path, work).then(
      (v) => {
        this.health.answered();
        return v;
      },
      (err: unknown) => {
        const e = StrataError.from(err);
        this.health.failed(e.errno, e.message);
        this.errors?.add(1, { op, errno: e.errnoName });
        throw err;
      },
    );
  }

  private traced<T>(op: string, path: string, work: () => Promise<T>): Promise<T> {
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
