import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

interface KeyValue {
  key: string;
  value: { stringValue?: string; intValue?: string | number; doubleValue?: number };
}

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, string | number | undefined>;
}

export interface ReceivedMetric {
  service: string;
  name: string;
  /** Histogram point counts, or sum/gauge values, with their attributes. */
  points: { value: number; attributes: Record<string, string | number | undefined> }[];
}

function attrs(list: KeyValue[] | undefined): Record<string, string | number | undefined> {
  const out: Record<string, string | number | undefined> = {};
  for (const kv of list ?? []) out[kv.key] = kv.value.stringValue ?? (kv.value.intValue !== undefined ? Number(kv.value.intValue) : kv.value.doubleValue);
  return out;
}

interface Resource {
  resource?: { attributes?: KeyValue[] };
}
interface TracesBody {
  resourceSpans?: (Resource & { scopeSpans?: { spans?: (Omit<ReceivedSpan, 'service' | 'attributes'> & { attributes?: KeyValue[] })[] }[] })[];
}
interface Point {
  attributes?: KeyValue[];
  count?: string | number;
  asInt?: string | number;
  asDouble?: number;
}
interface MetricsBody {
  resourceMetrics?: (Resource & {
    scopeMetrics?: { metrics?: { name: string; histogram?: { dataPoints?: Point[] }; sum?: { dataPoints?: Point[] }; gauge?: { dataPoints?: Point[] } }[] }[];
  })[];
}

/** A minimal OTLP/HTTP (JSON encoding) collector for tests: keeps every span and metric point it is sent. */
export async function startOtlpReceiver(): Promise<{ endpoint: string; spans: ReceivedSpan[]; metrics: ReceivedMetric[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const metrics: ReceivedMetric[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      try {
        const body: unknown = JSON.parse(Buffer.concat(parts).toString('utf8'));
        if (req.url === '/v1/traces') {
          for (const rs of (body as TracesBody).resourceSpans ?? []) {
            const service = String(attrs(rs.resource?.attributes)['service.name']);
            for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push({ ...s, service, attributes: attrs(s.attributes) });
          }
        } else if (req.url === '/v1/metrics') {
          for (const rm of (body as MetricsBody).resourceMetrics ?? []) {
            const service = String(attrs(rm.resource?.attributes)['service.name']);
            for (const sm of rm.scopeMetrics ?? [])
              for (const m of sm.metrics ?? []) {
                const dps = m.histogram?.dataPoints ?? m.sum?.dataPoints ?? m.gauge?.dataPoints ?? [];
                metrics.push({ service, name: m.name, points: dps.map((p) => ({ value: Number(p.count ?? p.asInt ?? p.asDouble ?? 0), attributes: attrs(p.attributes) })) });
              }
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    metrics,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
