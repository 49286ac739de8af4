import { isIP, isIPv6 } from 'node:net';
import { StrataError } from '@strata/errors';

/** What is wrong with a resolver address list: the offending text (one entry, or the whole list) and why. */
export interface AddressProblem {
  text: string;
  problem: string;
}

const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

function hostProblem(host: string): string | undefined {
  if (host === '') return 'expected host:port (the host is missing)';
  if (isIP(host) !== 0) return undefined;
  const labels = (host.endsWith('.') ? host.slice(0, -1) : host).split('.');
  // All-digit labels are an IPv4 address or nothing: grpc-js would look "999.1.1.1" up as a name.
  if (labels.every((l) => /^[0-9]+$/.test(l))) return `'${host}' is not an IPv4 address`;
  if (host.length > 253 || !labels.every((l) => LABEL.test(l))) return `'${host}' is not a host name or IP address`;
  return undefined;
}

/**
 * One address of a name, as the client shows it and takes it back:
 * "resolvers.example (10.0.0.5:7400)" dials 10.0.0.5:7400 and speaks to it
 * as resolvers.example (TLS verifies that name). A name that resolves to
 * several addresses becomes one of these per address (name-expansion.ts);
 * `strata status` hands the ones the agent uses back to the client.
 */
const PINNED = /^(\S+) \((\S+)\)$/;

function pinnedProblem(name: string, dial: string): string | undefined {
  if (isIP(name) !== 0) return `'${name}' is an IP address: "NAME (IP:PORT)" pins a host name to one of its addresses`;
  const bad = hostProblem(name);
  if (bad) return bad;
  const dialBad = addressProblem(dial);
  if (dialBad) return dialBad;
  if (isIP(hostOf(dial)) === 0) return `'${dial}' must be an IP address and port ("NAME (IP:PORT)")`;
  return undefined;
}

/** A checked address's name and the address dialled, when it is the pinned form "NAME (IP:PORT)". */
export function pinnedOf(address: string): { name: string; dial: string } | undefined {
  const m = PINNED.exec(address);
  return m ? { name: m[1], dial: m[2] } : undefined;
}

/** "NAME (IP:PORT)" for `name` reached at `ip` (an IPv6 address goes in brackets). */
export function pinnedAddress(name: string, ip: string, port: number | string): string {
  return `${name} (${joinHostPort(ip, port)})`;
}

/** "host:port", or "[v6]:port". */
export function joinHostPort(host: string, port: number | string): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The host:port a checked address connects to: itself, or a pinned one's IP:PORT. */
export function dialAddress(address: string): string {
  return pinnedOf(address)?.dial ?? address;
}

/** The port of a checked "host:port" (or of a pinned address). */
export function portOf(address: string): string {
  const a = dialAddress(address);
  return a.slice(a.lastIndexOf(':') + 1);
}

/**
 * Why one "host:port" cannot be a resolver address, or undefined when it
 * can. Checked before any connection is tried: grpc-js takes almost anything
 * as a target and only fails later with a name-resolution message about
 * something the user never typed ("dns:http://...").
 */
export function addressProblem(address: string): string | undefined {
  const pinned = PINNED.exec(address);
  if (pinned) return pinnedProblem(pinned[1], pinned[2]);
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(address)) return 'expected host:port (no scheme)';
  if (/\s/.test(address)) return 'expected host:port (no spaces)';
  if (address.includes('/')) return 'expected host:port (no path)';
  let port: string;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(address);
  if (bracketed) {
    if (!isIPv6(bracketed[1])) return `'${bracketed[1]}' is not an IPv6 address`;
    if (bracketed[2] === undefined) return 'expected [ipv6]:port (the port is missing)';
    port = bracketed[2];
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) return 'expected host:port (the port is missing)';
    const host = address.slice(0, colon);
    port = address.slice(colon + 1);
    if (host.includes(':')) return isIPv6(host) || isIPv6(address) ? 'expected host:port (an IPv6 address goes in brackets: [::1]:7400)' : 'expected host:port';
    const bad = hostProblem(host);
    if (bad) return bad;
  }
  if (port === '') return 'expected host:port (the port is missing)';
  if (!/^[0-9]+$/.test(port)) return `port '${port}' is not a number`;
  const n = Number(port);
  if (n < 1 || n > 65535) return `port ${port} is out of range (1-65535)`;
  return undefined;
}

function entries(addresses: string | readonly string[]): string[] {
  return (typeof addresses === 'string' ? [addresses] : addresses).flatMap((a) => a.split(',')).map((a) => a.trim());
}

/** The first problem of an address list ("h:p,h:p" or a list of them), or undefined when every entry is usable. */
export function addressListProblem(addresses: string | readonly string[]): AddressProblem | undefined {
  const whole = typeof addresses === 'string' ? addresses : addresses.join(',');
  const list = entries(addresses);
  if (list.every((a) => a === '')) return { text: whole, problem: 'no address given' };
  // An empty entry is usually a typo ("a:1,,b:2", a variable that expanded to nothing): say so rather than guess.
  const empty = list.indexOf('');
  if (empty >= 0) return { text: whole, problem: `entry ${empty + 1} of ${list.length} is empty` };
  for (const a of list) {
    const problem = addressProblem(a);
    if (problem) return { text: a, problem };
  }
  return undefined;
}

/** "h:p,h:p" or a list of them, checked: a StrataError (EINVAL) names the first bad entry. */
export function parseAddresses(addresses: string | readonly string[]): string[] {
  const bad = addressListProblem(addresses);
  if (bad) throw StrataError.invalid(`resolver address '${bad.text}': ${bad.problem}`);
  return entries(addresses);
}

/** The host part of a checked "host:port" ("[::1]:7" gives "::1"; a pinned address gives its name). */
export function hostOf(address: string): string {
  const pinned = pinnedOf(address);
  if (pinned) return pinned.name;
  const bracketed = /^\[([^\]]*)\]/.exec(address);
  if (bracketed) return bracketed[1];
  const colon = address.lastIndexOf(':');
  return colon < 0 ? address : address.slice(0, colon);
}
