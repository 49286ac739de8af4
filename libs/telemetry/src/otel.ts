import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  metrics,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Histogram,
  type Meter,
} from '@opentelemetry/api';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import { errorMessage } from '@strata/errors';
import { closeMetricsListener } from './health';
import { registerProcessMetrics } from './process-metrics';
import { buildInfo, type BuildInfo } from './version';

export { SpanKind };
export type { Attributes, Context, Histogram, Meter };

let sdk: NodeSDK | undefined;
let tracing = false;
let metering = false;

export interface TelemetryOptions {
  /** service.name unless OTEL_SERVICE_NAME says otherwise. */
  service: string;
  /** Serve Prometheus metrics (/metrics) and /healthz on this address (HOST:PORT, from the service's --metrics-listen). */
  metricsListen?: { host: string; port: number };
  /** Older spelling: --metrics-port N is metricsListen 127.0.0.1:N. */
  metricsPort?: number;
}

export interface TelemetryStarted {
  tracing: boolean;
  metrics: boolean;
  /** Where /metrics and /healthz are served (the port chosen when 0 was asked). */
  metricsListen?: string;
}

let metricsAddress: string | undefined;

function listEnv(name: string): string[] {
  return (process.env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function otlpEndpointSet(signal: 'TRACES' | 'METRICS'): boolean {
  return Boolean(process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]);
}

/**
 * Starts @opentelemetry/sdk-node once, configured by the standard OTEL_*
 * variables. Telemetry is on only when something asks for it (an OTLP
 * endpoint, an OTEL_*_EXPORTER, or a metrics address) and OTEL_SDK_DISABLED
 * is not true; otherwise nothing is started and the hot paths skip every
 * span and measurement. The resource never carries the command line (the
 * SDK's process detector would export argv, secrets and all): service,
 * version, host, OS and runtime only. A metrics address that cannot be
 * bound fails the start (a StrataError naming it).
 */
export async function startTelemetry(o: TelemetryOptions): Promise<TelemetryStarted> {
  if (sdk || process.env.OTEL_SDK_DISABLED === 'true') return { tracing, metrics: metering, ...(metricsAddress ? { metricsListen: metricsAddress } : {}) };
  const tracesAsked = otlpEndpointSet('TRACES') || listEnv('OTEL_TRACES_EXPORTER').some((e) => e !== 'none');
  let metricExporters = listEnv('OTEL_METRICS_EXPORTER');
  if (metricExporters.length === 0 && otlpEndpointSet('METRICS')) metricExporters = ['otlp'];
  const listen = o.metricsListen ?? (o.metricsPort !== undefined ? { host: '127.0.0.1', port: o.metricsPort } : undefined);
  // Prometheus is served by our own listener (with /healthz), never by the SDK's on every interface.
  metricExporters = metricExporters.filter((e) => e !== 'none' && e !== 'prometheus');
  const metricsAsked = metricExporters.length > 0 || listen !== undefined;
  if (!tracesAsked && !metricsAsked) return { tracing: false, metrics: false };
  // Unset means "otlp to localhost" to the SDK; here an unasked signal stays off.
  if (!tracesAsked) process.env.OTEL_TRACES_EXPORTER = 'none';
  // Loaded only when asked for: the SDK is a few hundred modules a CLI call should not pay for.
  const [{ NodeSDK: Sdk, resources }, readers] = await Promise.all([import('@opentelemetry/sdk-node'), import('./metric-readers.js')]);
  const metricReaders = [...(metricExporters.includes('otlp') ? [readers.otlpReaderFromEnv()] : [])];
  if (listen) {
    const served = await readers.serveMetrics(listen);
    metricReaders.push(served.reader);
    metricsAddress = served.address;
  }
  const info = buildInfo();
  sdk = new Sdk({
    serviceName: process.env.OTEL_SERVICE_NAME ?? o.service,
    resourceDetectors: [resources.envDetector, resources.hostDetector, resources.osDetector, runtimeDetector(info)],
    metricReaders,
  });
  sdk.start();
  tracing = tracesAsked;
  metering = metricsAsked;
  if (metering) registerProcessMetrics(meter(), info);
  return { tracing, metrics: metering, ...(metricsAddress ? { metricsListen: metricsAddress } : {}) };
}

/** What the SDK's process detector gives, less the command line, the executable path and the owner. */
function runtimeDetector(info: BuildInfo): { detect(): { attributes: Attributes } } {
  return {
    detect: () => ({
      attributes: {
        'service.version': info.version,
        ...(info.commit ? { 'vcs.ref.head.revision': info.commit } : {}),
        'process.pid': process.pid,
        'process.runtime.name': 'nodejs',
        'process.runtime.version': info.node,
      },
    }),
  };
}

/** Flushes and stops the SDK (at shutdown, so the last spans and points are exported) and closes the metrics listener. */
export async function stopTelemetry(): Promise<void> {
  const s = sdk;
  sdk = undefined;
  metricsAddress = undefined;
  await s?.shutdown().catch(() => undefined);
  await closeMetricsListener();
}

export function tracingOn(): boolean {
  return tracing;
}

export function metricsOn(): boolean {
  return metering;
}

/** strata's meter (a no-op one when metrics are off). */
export function meter(): Meter {
  return metrics.getMeter('strata');
}

/** Latency buckets in milliseconds, from a cached FUSE answer to a slow cold read. */
export const LATENCY_BUCKETS_MS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

export function latencyHistogram(name: string, description: string): Histogram {
  return meter().createHistogram(name, { unit: 'ms', description, advice: { explicitBucketBoundaries: LATENCY_BUCKETS_MS } });
}

/** The W3C trace context (traceparent, tracestate) of the active span, for a request that crosses processes. */
export function injectTraceContext(): Record<string, string> {
  const carrier: Record<string, string> = {};
  if (tracing) propagation.inject(context.active(), carrier);
  return carrier;
}

/** The caller's context from a carrier (Session trace_context, gRPC metadata). */
export function extractTraceContext(carrier: Record<string, string | string[] | Buffer | undefined>): Context {
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(carrier)) if (typeof v === 'string') flat[k] = v;
  return propagation.extract(ROOT_CONTEXT, flat);
}

export interface SpanOptions {
  kind?: SpanKind;
  /** Parent context; default the active one. */
  parent?: Context;
  /** Only as a child of a span (no root spans for background work). */
  childOnly?: boolean;
}

/**
 * Runs `fn` inside a span when tracing is on (errors recorded, status set);
 * otherwise just runs it. Attributes may be a function, so that building
 * them costs nothing when tracing is off.
 */
export function inSpan<T>(name: string, attributes: Attributes | (() => Attributes), fn: () => Promise<T>, o: SpanOptions = {}): Promise<T> {
  if (!tracing) return fn();
  const parent = o.parent ?? context.active();
  if (o.childOnly && !trace.getSpan(parent)) return fn();
  const attrs = typeof attributes === 'function' ? attributes() : attributes;
  const span = trace.getTracer('strata').startSpan(name, { kind: o.kind ?? SpanKind.INTERNAL, attributes: attrs }, parent);
  return context.with(trace.setSpan(parent, span), fn).then(
    (v) => {
      span.end();
      return v;
    },
    (err: unknown) => {
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(err) });
      span.end();
      throw err;
    },
  );
}

export interface TracedOptions {
  span: string;
  attributes: Attributes | (() => Attributes);
  kind: SpanKind;
  parent?: Context;
  /** Where the duration goes (ms), with these attributes. */
  latency?: Histogram;
  labels: Attributes;
  /** Called inside the span on failure (so a log line there carries the trace id); the error still propagates. */
  onFailure?: (err: unknown) => void;
}

/**
 * An operation as telemetry: a span when tracing is on, a latency point
 * when a histogram is given, a hook on failure. The agent's FUSE operations
 * and the resolver's requests both go through here.
 */
export function traced<T>(o: TracedOptions, fn: () => Promise<T>): Promise<T> {
  const started = o.latency ? performance.now() : 0;
  const onFailure = o.onFailure;
  const run = onFailure
    ? (): Promise<T> =>
        fn().catch((err: unknown) => {
          onFailure(err);
          throw err;
        })
    : fn;
  const work = tracing ? inSpan(o.span, o.attributes, run, { kind: o.kind, parent: o.parent }) : run();
  const latency = o.latency;
  return latency ? work.finally(() => latency.record(performance.now() - started, o.labels)) : work;
}

/** trace_id/span_id of the active span, for log lines. */
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  if (!tracing) return undefined;
  const s = trace.getActiveSpan();
  if (!s) return undefined;
  const c = s.spanContext();
  return { trace_id: c.traceId, span_id: c.spanId };
}
