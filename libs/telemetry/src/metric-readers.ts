import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { NodeSDKConfiguration } from '@opentelemetry/sdk-node';
// The SDK's own reading of OTEL_EXPORTER_OTLP_* (protocol, endpoint, interval), as it would build it unasked.
import { getOtlpMetricExporterFromEnv, getPeriodicExportingMetricReaderFromEnv } from '@opentelemetry/sdk-node/build/src/utils';
import { Errno, StrataError, errorMessage } from '@strata/errors';
import { currentHealth, keepMetricsListener } from './health';

/** Loaded with the SDK, only when telemetry is asked for. */

/** A reader as the SDK takes it (exporter-prometheus and sdk-node may each hold their own copy of sdk-metrics). */
export type MetricReader = NonNullable<NodeSDKConfiguration['metricReaders']>[number];

export function otlpReaderFromEnv(): MetricReader {
  return getPeriodicExportingMetricReaderFromEnv(getOtlpMetricExporterFromEnv());
}

function answer(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${text}\n`);
}

/**
 * One HTTP listener at the address asked for (never implicitly on every
 * interface): GET /metrics is Prometheus text, GET /healthz the service's
 * health (200 "ok serving", 503 otherwise). Fails with the address named
 * when it cannot be bound.
 */
export async function serveMetrics(listen: { host: string; port: number }): Promise<{ reader: MetricReader; address: string }> {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(res, 405, 'method not allowed');
    if (url === '/metrics') return exporter.getMetricsRequestHandler(req, res);
    if (url === '/healthz') {
      const h = currentHealth();
      return answer(res, h.ok ? 200 : 503, `${h.ok ? 'ok' : 'unhealthy'} ${h.detail}`);
    }
    answer(res, 404, 'not found: /metrics, /healthz');
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      reject(new StrataError(Errno.EINVAL, `cannot serve metrics on ${listen.host}:${listen.port}: ${errorMessage(err)}`));
    });
    server.listen(listen.port, listen.host, () => resolve());
  });
  server.on('error', () => undefined);
  // A scrape in progress must not keep a stopping service alive.
  server.unref();
  keepMetricsListener(server);
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return { reader: exporter as unknown as MetricReader, address: `${host}:${a.port}` };
}
