import { isIP } from 'node:net';
import { createSecureContext, type PeerCertificate, type SecureContextOptions } from 'node:tls';
import { ServerCredentials } from '@grpc/grpc-js';
import { Errno, StrataError, errorMessage } from '@strata/errors';
import { readPemFile } from '@strata/protocol';

/** The files of the resolver's TLS identity; with a client CA, callers must present a certificate it signed. */
export interface ServerTlsFiles {
  cert: string;
  key: string;
  clientCa?: string;
}



/**
 * The files read and checked as node will use them: a key that does not
 * match its certificate, or a file that is not PEM, fails here with the
 * file named rather than on the first connection.
 */
function contextOptions(files: ServerTlsFiles): SecureContextOptions {
  const options: SecureContextOptions = { cert: readPemFile(files.cert, 'certificate'), key: readPemFile(files.key, 'key') };
  if (files.clientCa !== undefined) options.ca = readPemFile(files.clientCa, 'client CA');
  try {
    createSecureContext(options);
  } catch (err) {
    const names = [files.cert, files.key, files.clientCa].filter((f): f is string => f !== undefined).join(', ');
    throw new StrataError(Errno.EINVAL, `TLS files ${names} do not make a usable identity: ${errorMessage(err)}`, { cause: err });
  }
  return options;
}

/**
 * Server credentials whose certificate, key and client CA can be read
 * again while serving. grpc-js hands each update to the listening
 * http2 server's setSecureContext, so connections made afterwards get the
 * new identity and open ones (agents' Session streams) keep theirs.
 */
export class ReloadableServerCredentials extends ServerCredentials {
  private current: SecureContextOptions;
  private readonly listeners = new Set<(options: SecureContextOptions) => void>();

  constructor(private readonly files: ServerTlsFiles) {
    const options = contextOptions(files);
    // rejectUnauthorized with requestCert: a caller without a certificate from the CA fails the handshake.
    super({ requestCert: files.clientCa !== undefined, rejectUnauthorized: true }, options);
    this.current = options;
  }

  /** The identity in use, for another listener that must speak the same TLS (the data stream). */
  get secureOptions(): SecureContextOptions {
    return this.current;
  }

  /** Calls `listener` with the identity after each reload. */
  onReload(listener: (options: SecureContextOptions) => void): void {
    this.listeners.add(listener);
  }

  get mutual(): boolean {
    return this.files.clientCa !== undefined;
  }

  /** Reads the files again; on any problem throws and the identity in use stays. */
  reload(): void {
    const options = contextOptions(this.files);
    this.updateSecureContextOptions(options);
    this.current = options;
    for (const l of this.listeners) l(options);
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

/** The SAN list node reports ("DNS:a, URI:spiffe://x/y, IP Address:1.2.3.4"), split; a URI with ", " in it cannot occur (SANs are encoded). */
function uriSan(cert: PeerCertificate): string | undefined {
  const sans = cert.subjectaltname;
  if (typeof sans !== 'string') return undefined;
  for (const entry of sans.split(/,\s*/)) if (entry.startsWith('URI:')) return entry.slice(4);
  return undefined;
}

/**
 * Who is calling, by the certificate it presented: its URI SAN when it has
 * one (a SPIFFE id), else its subject CN. Undefined over plaintext or TLS
 * without a client certificate.
 */
export function callerIdentity(call: { getAuthContext?(): { sslPeerCertificate?: PeerCertificate } | null }): string | undefined {
  const cert = call.getAuthContext?.()?.sslPeerCertificate;
  if (!cert) return undefined;
  const uri = uriSan(cert);
  if (uri) return uri;
  const cn: unknown = cert.subject?.CN;
  // Several CNs come as an array; the last one is the most specific.
  if (Array.isArray(cn)) return cn.length > 0 ? String(cn[cn.length - 1]) : undefined;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

/** 127.0.0.0/8, ::1 and localhost: reachable from this host only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}
