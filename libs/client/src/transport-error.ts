import { getSystemErrorMap } from 'node:util';
import { Errno, GrpcCode, StrataError, errorMessage, isStrataError } from '@strata/errors';
import { fromServiceError } from '@strata/protocol';
import { hostOf } from './addresses';

/** Why a call never reached a strata resolver (as opposed to a resolver answering with an error). */
export type TransportFailure =
  /** Nothing listens there (ECONNREFUSED). */
  | 'refused'
  /** The network says no (EHOSTUNREACH, ENETUNREACH, ...). */
  | 'unreachable'
  /** The host name does not resolve. */
  | 'dns'
  /** Nothing came back before the deadline. */
  | 'timeout'
  /** Something answers, but not gRPC (HTTP/1, TLS-only, random bytes). */
  | 'not-grpc'
  /** The TLS handshake failed (unknown CA, no or a refused client certificate, a name mismatch). */
  | 'tls'
  /** A gRPC server that does not serve the strata.v1 method asked for. */
  | 'not-strata'
  /** The connection broke for another reason. */
  | 'dropped';

const BRAND = Symbol.for('strata.TransportError');

export interface TransportErrorOptions {
  failure: TransportFailure;
  addresses: readonly string[];
  /** The failure without the address ("connection refused"), for combining several. */
  reason: string;
  /** The Node system error code behind it, when grpc-js named one (ECONNREFUSED, EHOSTUNREACH). */
  systemCode?: string;
  /** errno and gRPC status are the ones the raw status maps to, so retries and callers' checks do not change. */
  errno: number;
  code: StrataError['code'];
  cause?: unknown;
}

/**
 * A call that never got a resolver's answer: one readable sentence naming
 * the address, instead of grpc-js's "No connection established. Last
 * error: ... Resolution note: ". The errno and status stay those of the raw
 * failure (UNAVAILABLE stays retryable, DEADLINE_EXCEEDED stays ETIMEDOUT);
 * the raw grpc-js error is the cause.
 */
export class TransportError extends StrataError {
  readonly [BRAND] = true;
  readonly failure: TransportFailure;
  readonly addresses: readonly string[];
  readonly reason: string;
  readonly systemCode: string | undefined;

  constructor(message: string, o: TransportErrorOptions) {
    super(o.errno, message, { code: o.code, cause: o.cause });
    this.name = 'TransportError';
    this.failure = o.failure;
    this.addresses = o.addresses;
    this.reason = o.reason;
    this.systemCode = o.systemCode;
  }
}

export function isTransportError(err: unknown): err is TransportError {
  return typeof err === 'object' && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true;
}

/** "3 s", "1.5 s", "200 ms". */
export function formatBudget(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}

/** libuv's own wording for a system error code ("connection refused"), or the code itself. */
function systemText(code: string): string {
  for (const [name, text] of getSystemErrorMap().values()) if (name === code) return text;
  return code;
}

/** The standard trailer a strata resolver puts its ErrorInfo in: with it, the answer is the resolver's own. */
function carriesErrorInfo(err: unknown): boolean {
  const md = (err as { metadata?: { get?(key: string): unknown[] } } | null)?.metadata;
  return typeof md?.get === 'function' && md.get('grpc-status-details-bin').length > 0;
}

function details(err: unknown): string {
  const d = (err as { details?: unknown } | null)?.details;
  return typeof d === 'string' ? d : errorMessage(err);
}

interface Described {
  failure: TransportFailure;
  message: string;
  reason: string;
  systemCode?: string;
}

/** OpenSSL's and node's words for a failed verification of the resolver's certificate, as the operator would say it. */
const UNKNOWN_CA = /self[- ]signed certificate|unable to get local issuer certificate|unable to verify the first certificate|unable to get issuer certificate/;
/** Text only a TLS layer produces. */
const TLS_TEXT = /SSL routines|SSL alert|certificate|altnames|wrong version number|packet length too long|handshake/i;

/**
 * The reason a TLS handshake failed, from grpc-js's text (node's
 * verification error, or OpenSSL's "...:SSL routines:func:reason:file:line").
 */
function tlsReason(text: string): string {
  if (UNKNOWN_CA.test(text)) return 'certificate signed by an unknown CA (--tls-ca names the CA of the resolvers)';
  if (/alert certificate required/.test(text)) return 'the resolver requires a client certificate (--tls-cert and --tls-key)';
  if (/alert (unknown ca|bad certificate|certificate unknown|decrypt error|access denied)/.test(text)) return 'the resolver refused the client certificate';
  if (/certificate has expired/.test(text)) return "the resolver's certificate has expired";
  if (/certificate is not yet valid/.test(text)) return "the resolver's certificate is not valid yet";
  const names = /(Hostname\/IP does not match certificate's altnames: .*?)\.?\s*(\(|Resolution note|$)/.exec(text);
  if (names) return `the resolver's certificate is not for this address (${names[1]})`;
  if (/wrong version number|packet length too long|http request/i.test(text)) return 'the resolver does not speak TLS (is it started with --tls-cert?)';
  const openssl = /:SSL routines:[^:]*:([^:]+):/.exec(text)?.[1];
  if (openssl) return openssl;
  return text.replace(/\s*Resolution note:\s*$/, '').replace(/^No connection established\. Last error: (Error: )?/, '').replace(/\s*\(\d{4}-[^)]*\)\.?\s*$/, '');
}

/**
 * What grpc-js says went wrong, in words. Its status details are the only
 * place the underlying socket error is reported, so they are read here,
 * once, against grpc-js's own phrasing (the unit tests pin it against real
 * sockets); anything unrecognised keeps grpc-js's text after the address.
 */
function describe(code: number, text: string, address: string, budgetMs: number | undefined, secure: boolean): Described | undefined {
  if (code === GrpcCode.DEADLINE_EXCEEDED) {
    const within = budgetMs !== undefined ? ` within ${formatBudget(budgetMs)}` : ' before the deadline';
    return { failure: 'timeout', message: `no answer from ${address}${within}`, reason: `no answer${within}` };
  }
  const http = /Received HTTP status code (\d+)/.exec(text);
  if (http) {
    const reason = `not a gRPC server (it answers HTTP ${http[1]})`;
    return { failure: 'not-grpc', message: `${address} is ${reason}`, reason };
  }
  if (code === GrpcCode.UNIMPLEMENTED) {
    const method = /does not implement the method (\S+)/.exec(text)?.[1];
    if (!method) return undefined;
    const reason = `does not serve ${method} (not a strata resolver, or an older one)`;
    return { failure: 'not-strata', message: `${address} ${reason}`, reason };
  }
  if (code !== GrpcCode.UNAVAILABLE) return undefined;
  if (secure && TLS_TEXT.test(text) && !/\bE[A-Z]{3,}\b/.test(text)) {
    const reason = tlsReason(text);
    return { failure: 'tls', message: `TLS handshake with ${address} failed: ${reason}`, reason: `TLS handshake failed: ${reason}` };
  }
  if (secure && /Failed to connect/.test(text)) {
    // Over TLS 1.3 the server checks the client's certificate after the client thinks the handshake is done, and just closes.
    const reason = 'the resolver closed the connection (it does not accept this client certificate, or wants one)';
    return { failure: 'tls', message: `TLS handshake with ${address} failed: ${reason}`, reason: `TLS handshake failed: ${reason}` };
  }
  if (/Name resolution failed/.test(text)) {
    const reason = `cannot resolve host ${hostOf(address)}`;
    return { failure: 'dns', message: `${reason} (resolver address ${address})`, reason };
  }
  const sys = /\b(E[A-Z]{3,})\b/.exec(text)?.[1];
  if (sys) {
    const reason = systemText(sys);
    const failure: TransportFailure = sys === 'ECONNREFUSED' ? 'refused' : /UNREACH|ENOTFOUND|EAI_/.test(sys) ? 'unreachable' : 'dropped';
    const message = failure === 'dropped' ? `lost the connection to ${address} (${reason})` : `no resolver answers at ${address} (${reason})`;
    return { failure, message, reason, systemCode: sys };
  }
  if (/Protocol error/.test(text)) {
    const reason = 'not a gRPC server (it does not speak HTTP/2)';
    return { failure: 'not-grpc', message: `${address} is ${reason}`, reason };
  }
  if (/Failed to connect/.test(text)) {
    // grpc-js's words when the peer closed before the HTTP/2 handshake: typically a TLS-only server.
    const reason = 'closed the connection before gRPC started (a TLS-only server: give --tls-ca; or not gRPC)';
    return { failure: 'not-grpc', message: `${address} ${reason}`, reason };
  }
  // grpc-js says "Last error: null." when it has none to give (e.g. a resolver list naming one address twice).
  const reason = text.replace(/\s*Resolution note:\s*$/, '').replace(/^No connection established\. Last error: (Error: )?/, '').replace(/^null\.?$/, '') || 'unavailable';
  return { failure: 'dropped', message: `lost the connection to ${address} (${reason})`, reason };
}

/**
 * The error of one attempt on `address`: a resolver's own answer (it carries
 * an ErrorInfo) as the resolver sent it; a failure to reach it as a
 * TransportError that says what happened in one line. `secure`: the
 * channel speaks TLS, so a connection closed early is a refused handshake.
 */
export function transportError(err: unknown, address: string, budgetMs?: number, secure = false): StrataError {
  const e = fromServiceError(err);
  if (isStrataError(err) || carriesErrorInfo(err)) return e;
  const d = describe(e.code, details(err), address, budgetMs, secure);
  if (!d) return e;
  return new TransportError(d.message, { ...d, addresses: [address], errno: e.errno, code: e.code, cause: err });
}

/** A call that failed on no answer from the resolver at `address` within `budgetMs` (the client's own timer). */
export function noAnswer(address: string, budgetMs: number): TransportError {
  const reason = `no answer within ${formatBudget(budgetMs)}`;
  return new TransportError(`no answer from ${address} within ${formatBudget(budgetMs)}`, {
    failure: 'timeout',
    addresses: [address],
    reason,
    errno: Errno.ETIMEDOUT,
    code: GrpcCode.DEADLINE_EXCEEDED,
  });
}

/**
 * The last failure of each resolver tried, as one error: "no resolver
 * answers at A, B (connection refused)" when they agree, else each one's
 * reason. Status and errno are those of the last attempt.
 */
export function combineTransportErrors(errors: readonly TransportError[]): TransportError {
  const last = errors[errors.length - 1];
  if (errors.length === 1) return last;
  const addresses = errors.flatMap((e) => e.addresses);
  const same = errors.every((e) => e.reason === last.reason && e.failure === last.failure);
  const message = same
    ? `no resolver answers at ${addresses.join(', ')} (${last.reason})`
    : `no resolver answered (${errors.map((e) => `${e.addresses.join(', ')}: ${e.reason}`).join('; ')})`;
  return new TransportError(message, {
    failure: last.failure,
    addresses,
    reason: same ? last.reason : 'several failures',
    systemCode: last.systemCode,
    errno: last.errno,
    code: last.code,
    cause: last.cause,
  });
}
