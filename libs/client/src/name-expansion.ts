import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { Errno, GrpcCode, StrataError, errorMessage } from '@strata/errors';
import { hostOf, pinnedAddress, pinnedOf, portOf } from './addresses';

/** One address of a name (what `dns.promises.lookup(name, { all: true })` gives). */
export interface LookedUp {
  address: string;
  family: number;
}

/** Every address of a host name; the system's resolver (/etc/hosts, DNS) unless a test gives its own. */
export type LookupAll = (host: string) => Promise<readonly LookedUp[]>;

/**
 * getaddrinfo(3) through libuv: /etc/hosts and nsswitch, as grpc-js itself
 * would have resolved the name; in the resolver's order unless node was
 * told otherwise (--dns-result-order).
 */
export const systemLookup: LookupAll = (host) => dns.lookup(host, { all: true });

/** A name stands for at most this many resolvers (a channel and a Session stream each); further addresses are not used. */
export const MAX_ADDRESSES_PER_NAME = 64;

/** Past this a lookup counts as failed (getaddrinfo cannot be cancelled; its answer is then ignored). */
export const LOOKUP_TIMEOUT_MS = 5_000;

/**
 * A resolver address as a channel connects to it: `dial` is the host:port
 * grpc-js connects to; `serverName`, when set, is the name TLS verifies
 * the certificate against and `authority` the :authority the calls carry,
 * so an address pinned from a name is still spoken to as that name.
 */
export interface DialTarget {
  /** How it is shown and compared: as given, or "name (ip:port)". */
  address: string;
  dial: string;
  serverName?: string;
  authority?: string;
}

/** How a checked address is dialled (a pinned one at its IP, as its name; anything else as it is). */
export function dialTarget(address: string): DialTarget {
  const pinned = pinnedOf(address);
  if (!pinned) return { address, dial: address };
  return { address, dial: pinned.dial, serverName: pinned.name, authority: `${pinned.name}:${portOf(pinned.dial)}` };
}

/** Whether a checked address names a host that a lookup may turn into several addresses (not an IP literal, not pinned). */
export function isHostName(address: string): boolean {
  return pinnedOf(address) === undefined && isIP(hostOf(address)) === 0;
}

/**
 * The addresses to spread over, in the order given, each once. A name
 * with at most one address per family is one host (localhost: 127.0.0.1
 * and ::1), left to grpc-js, which tries both: an address per family would
 * show a resolver listening on only one of them as half down. Otherwise
 * the family with more addresses (a tie: the family of the first one, the
 * system's preference): a dual-stack headless Service lists each pod once
 * per family, and one family reaches every pod.
 */
export function spreadAddresses(found: readonly LookedUp[]): string[] | undefined {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const a of found) {
    const list = a.family === 6 ? v6 : v4;
    // One past the cap is enough to compare the families: however long the answer, the work stays bounded.
    if (list.length <= MAX_ADDRESSES_PER_NAME && !list.includes(a.address)) list.push(a.address);
  }
  if (v4.length <= 1 && v6.length <= 1) return undefined;
  const family = v4.length !== v6.length ? (v4.length > v6.length ? v4 : v6) : found[0].family === 6 ? v6 : v4;
  return family.slice(0, MAX_ADDRESSES_PER_NAME);
}

function dnsFailure(address: string, why: string, cause?: unknown): StrataError {
  // UNAVAILABLE, retryable: a headless Service with no ready pod has no records until one is ready.
  return new StrataError(Errno.EIO, `cannot resolve host ${hostOf(address)} (resolver address ${address}): ${why}`, { code: GrpcCode.UNAVAILABLE, cause });
}

/**
 * The addresses a "name:port" stands for: one "name (ip:port)" per address
 * when it has several (see spreadAddresses), else the address itself. A
 * lookup that fails, finds nothing or takes longer than `timeoutMs` is a
 * StrataError naming the name.
 */
export async function expandName(address: string, lookup: LookupAll = systemLookup, timeoutMs = LOOKUP_TIMEOUT_MS): Promise<string[]> {
  const host = hostOf(address);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(dnsFailure(address, `no answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  let found: readonly LookedUp[];
  try {
    found = await Promise.race([lookup(host.endsWith('.') ? host.slice(0, -1) : host), late]);
  } catch (err) {
    if (err instanceof StrataError) throw err;
    const code = (err as { code?: unknown } | null)?.code;
    throw dnsFailure(address, typeof code === 'string' ? code : errorMessage(err), err);
  } finally {
    clearTimeout(timer);
  }
  if (!Array.isArray(found) || found.length === 0) throw dnsFailure(address, 'no addresses');
  const spread = spreadAddresses(found);
  if (!spread) return [address];
  const port = portOf(address);
  return spread.map((ip) => pinnedAddress(host, ip, port));
}

/** One name's part of an expansion: the addresses it stands for now, or why it could not be looked up. */
export type NameResult = { address: string; expanded: string[] } | { address: string; error: StrataError };

/**
 * Every address of a checked list as it stands now: IP literals and pinned
 * addresses as they are, names looked up (all at once). Duplicates go, the
 * first kept: "a:1,a:1", or a pinned address a name also expands to (what
 * `strata status` passes back); an IP:PORT that a pinned address dials
 * goes in favour of the pinned one. A name whose lookup failed keeps its place
 * as the name itself, and its error is in `failed`.
 */
export async function expandAddresses(
  addresses: readonly string[],
  lookup: LookupAll = systemLookup,
  timeoutMs = LOOKUP_TIMEOUT_MS,
): Promise<{ addresses: string[]; failed: StrataError[] }> {
  const results: NameResult[] = await Promise.all(
    addresses.map(async (address): Promise<NameResult> => {
      if (!isHostName(address)) return { address, expanded: [address] };
      try {
        return { address, expanded: await expandName(address, lookup, timeoutMs) };
      } catch (err) {
        return { address, error: StrataError.from(err) };
      }
    }),
  );
  return {
    addresses: mergeExpansions(results.map((r) => ('error' in r ? [r.address] : r.expanded))),
    failed: results.flatMap((r) => ('error' in r ? [r.error] : [])),
  };
}

/**
 * The expansions of a list's entries as one list, each server once, the
 * first kept. An IP:PORT that a pinned address also dials goes, whatever
 * the order: the pinned one is the same server, spoken to by the name TLS
 * verifies.
 */
export function mergeExpansions(lists: readonly (readonly string[])[]): string[] {
  const out: string[] = [];
  for (const list of lists) for (const a of list) if (!out.includes(a)) out.push(a);
  const named = new Set(out.filter((a) => pinnedOf(a) !== undefined).map((a) => dialTarget(a).dial));
  return out.filter((a) => pinnedOf(a) !== undefined || !named.has(a));
}
