export { createLogger } from './logger';
export type { Logger, LoggerOptions } from './logger';
export { onShutdown } from './shutdown';
export type { ShutdownHandler } from './shutdown';
export {
  startTelemetry,
  stopTelemetry,
  tracingOn,
  metricsOn,
  meter,
  latencyHistogram,
  LATENCY_BUCKETS_MS,
  injectTraceContext,
  extractTraceContext,
  inSpan,
  traced,
  activeTraceIds,
  SpanKind,
} from './otel';
export type { TelemetryOptions, SpanOptions, TracedOptions, Attributes, Context, Histogram, Meter } from './otel';
