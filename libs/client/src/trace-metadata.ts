import { Metadata } from '@grpc/grpc-js';
import { context, propagation } from '@opentelemetry/api';

/**
 * Call metadata carrying the caller's W3C trace context, so a service that
 * runs OpenTelemetry sees its calls to strata continue in the resolver. A
 * no-op unless the calling process registered a propagator.
 */
export function tracedMetadata(): Metadata {
  const md = new Metadata();
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  for (const [k, v] of Object.entries(carrier)) md.set(k, v);
  return md;
}
