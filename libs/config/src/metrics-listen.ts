import type { StringDecl } from './declare';
import { parseHostPort, type HostPort } from './address';

/** Where metrics go when only a port is given: this host alone. */
export const METRICS_DEFAULT_HOST = '127.0.0.1';

/**
 * `--metrics-listen HOST:PORT` (or a bare PORT, on 127.0.0.1): where a
 * service serves /metrics and /healthz. Unset, no metrics listener runs; it
 * never listens on every interface unless told `0.0.0.0:PORT`.
 */
export function parseMetricsListen(text: string): HostPort | { problem: string } {
  const full = /^[0-9]+$/.test(text) ? `${METRICS_DEFAULT_HOST}:${text}` : text;
  const r = parseHostPort(full, { allowPortZero: true });
  return r.ok ? r.value : { problem: r.problem };
}

/** The option both services declare, with their own variable and the port their manifests use. */
export function metricsListenOption(env: string, examplePort: number): StringDecl {
  return {
    kind: 'string',
    arg: 'host:port',
    env,
    help: `serve Prometheus metrics (/metrics) and a plain-HTTP health check (/healthz) on this address; a bare port means ${METRICS_DEFAULT_HOST}:PORT (e.g. ${examplePort}); 0.0.0.0:${examplePort} for a scraper on another host (default: no metrics listener)`,
    check: (v) => {
      const r = parseMetricsListen(v);
      return 'problem' in r ? r.problem : undefined;
    },
  };
}
