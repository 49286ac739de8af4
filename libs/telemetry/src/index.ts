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
export type { TelemetryStarted } from './otel';
export { setHealthCheck, currentHealth } from './health';
export type { HealthState } from './health';
export { buildInfo, versionText } from './version';
export type { BuildInfo } from './version';
export { redactSecrets, redactValue, REDACTED } from './redact';
