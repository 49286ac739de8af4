import { parseHostPort } from '@strata/config';

/**
 * Where the data stream (data-stream.ts) listens:
 * - `beside`: the default, the gRPC address's host at a port the system
 *   picks (a host it cannot bind: reads stay on the Session);
 * - `at`: an address of its own (`--data-listen HOST:PORT`), so a firewall
 *   can admit it; failing to bind it fails the start;
 * - `off`: nowhere, every read goes over the Session.
 */
export type DataListen = { kind: 'off' } | { kind: 'beside' } | { kind: 'at'; host: string; port: number };

/** The words for "no data stream", as STRATA_DATA_STREAM=0 says it. */
const OFF = new Set(['0', 'off']);

/** `--data-listen`: HOST:PORT ([IPv6]:PORT; port 0: any free one on HOST), or 0 / off. */
export function parseDataListen(text: string): DataListen | { problem: string } {
  if (OFF.has(text.trim().toLowerCase())) return { kind: 'off' };
  const r = parseHostPort(text, { allowPortZero: true });
  if (!r.ok) return { problem: `${r.problem} (or 0 / off for no data stream)` };
  return { kind: 'at', host: r.value.host, port: r.value.port };
}

/**
 * The data stream asked for by the environment, as a resolver started
 * without main.ts's options sees it: $STRATA_RESOLVER_DATA_LISTEN, else
 * STRATA_DATA_STREAM=0 for none, else beside the gRPC port. A value that
 * does not parse counts as unset (main.ts refuses it before anything starts).
 */
export function dataListenFromEnv(env: NodeJS.ProcessEnv = process.env): DataListen {
  const given = env.STRATA_RESOLVER_DATA_LISTEN;
  if (given !== undefined && given !== '') {
    const r = parseDataListen(given);
    if (!('problem' in r)) return r;
  }
  return env.STRATA_DATA_STREAM === '0' ? { kind: 'off' } : { kind: 'beside' };
}

/** As an address for messages: `[::1]:7401`, `127.0.0.1:7401`. */
export function dataAddressText(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
