import { isIPv4, isIPv6 } from 'node:net';

export interface HostPort {
  /** Without the brackets of an IPv6 address. */
  host: string;
  port: number;
}

export interface AddressRules {
  /** Port 0 (the kernel picks a free one): fine to listen on, meaningless to connect to. */
  allowPortZero?: boolean;
}

export type AddressResult = { ok: true; value: HostPort } | { ok: false; problem: string };

const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const MAX_HOSTNAME = 253;

function isHostname(host: string): boolean {
  if (host.length > MAX_HOSTNAME) return false;
  const labels = host.replace(/\.$/, '').split('.');
  // All-digit dotted text that is not IPv4 (999.1.1.1) is a mistyped address, not a name.
  if (labels.every((l) => /^[0-9]+$/.test(l))) return false;
  return labels.every((l) => LABEL.test(l));
}

function shown(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}

/**
 * `host:port` as the services take it: an IPv4 address, a host name or a
 * bracketed IPv6 address, and a decimal port 1-65535. No scheme: grpc-js
 * would read `http://x:1` as a DNS name and fail much later, or not at all.
 */
export function parseHostPort(text: string, rules: AddressRules = {}): AddressResult {
  const fail = (why: string): AddressResult => ({ ok: false, problem: `${why}, got ${shown(text)}` });
  if (text.includes('://')) return fail('expected HOST:PORT, not a URL');
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]*)\]:([^:]*)$/.exec(text);
  if (v6) {
    host = v6[1];
    portText = v6[2];
    if (!isIPv6(host)) return fail('expected an IPv6 address between the brackets');
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return fail('expected HOST:PORT (e.g. 127.0.0.1:7400)');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return fail('an IPv6 address goes in brackets ([::1]:7400)');
    if (host === '') return fail('expected HOST:PORT, the host is missing');
    if (!isIPv4(host) && !isHostname(host)) return fail(`expected HOST:PORT, ${shown(host)} is not a host name or IP address`);
  }
  if (!/^[0-9]+$/.test(portText)) return fail('expected HOST:PORT with a decimal port');
  const port = Number(portText);
  const min = rules.allowPortZero ? 0 : 1;
  if (port < min || port > 65535) return { ok: false, problem: `port ${port} is out of range (${min}-65535) in ${shown(text)}` };
  return { ok: true, value: { host, port } };
}

/** The problem with an address, or undefined: for an option's `check`. */
export function addressProblem(text: string, rules: AddressRules = {}): string | undefined {
  const r = parseHostPort(text, rules);
  return r.ok ? undefined : r.problem;
}
