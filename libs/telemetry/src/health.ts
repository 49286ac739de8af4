import type { Server } from 'node:http';

/**
 * What `/healthz` on the metrics listener answers: plain HTTP, so a probe
 * works whatever the service's own API speaks (mutual TLS included). The
 * service says how it is; until it does, it is starting (503).
 */
export interface HealthState {
  ok: boolean;
  /** One line: "serving", "draining", "starting". */
  detail: string;
}

let check: () => HealthState = () => ({ ok: false, detail: 'starting' });
let listener: Server | undefined;

export function setHealthCheck(fn: () => HealthState): void {
  check = fn;
}

export function currentHealth(): HealthState {
  try {
    return check();
  } catch (err) {
    return { ok: false, detail: `health check failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** The metrics listener, kept here so stopTelemetry closes it without loading the SDK. */
export function keepMetricsListener(server: Server): void {
  listener = server;
}

export async function closeMetricsListener(): Promise<void> {
  const s = listener;
  listener = undefined;
  if (!s) return;
  s.closeAllConnections();
  await new Promise<void>((resolve) => s.close(() => resolve()));
}
