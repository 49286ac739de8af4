import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { Errno, StrataError, errorMessage } from '@strata/errors';

/**
 * A client's TLS files: the CA that signed the resolvers' certificates
 * (with it the client speaks TLS and verifies the resolver), and its own
 * certificate and key for a resolver that requires mutual TLS.
 */
export interface ClientTlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** The variables every client reads (flags of the CLI and the agent beat them). */
export const TLS_ENV = { ca: 'STRATA_TLS_CA', cert: 'STRATA_TLS_CERT', key: 'STRATA_TLS_KEY' } as const;

/** Certificates are a few KiB; a bigger file is a mistake, not read whole. */
const MAX_PEM_BYTES = 1 << 20;

/** $STRATA_TLS_CA, $STRATA_TLS_CERT, $STRATA_TLS_KEY; an empty variable counts as unset. */
export function tlsFromEnv(env: NodeJS.ProcessEnv = process.env): ClientTlsFiles {
  const files: ClientTlsFiles = {};
  for (const k of ['ca', 'cert', 'key'] as const) {
    const v = env[TLS_ENV[k]];
    if (v) files[k] = v;
  }
  return files;
}

/**
 * Makes `files` the TLS files of every client this process creates, by
 * writing them over $STRATA_TLS_*: a program's own flags (the CLI's, the
 * agent's) beat the variables, and code that builds its StrataClient
 * without a `tls` option picks them up. Only the files given are written.
 */
export function exportTlsEnv(files: ClientTlsFiles, env: NodeJS.ProcessEnv = process.env): void {
  for (const k of ['ca', 'cert', 'key'] as const) {
    const v = files[k];
    if (v !== undefined) env[TLS_ENV[k]] = v;
  }
}

/** Whether these files ask for TLS at all (a CA, or a certificate to present). */
export function tlsRequested(files: ClientTlsFiles | undefined): boolean {
  return files !== undefined && (files.ca !== undefined || files.cert !== undefined || files.key !== undefined);
}

function readPem(file: string, what: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    throw new StrataError(Errno.EINVAL, `cannot read the TLS ${what} ${file}: ${errorMessage(err)}`, { cause: err });
  }
  if (data.length > MAX_PEM_BYTES) throw new StrataError(Errno.EINVAL, `the TLS ${what} ${file} is larger than ${MAX_PEM_BYTES} bytes`);
  return data;
}

/**
 * The credentials of every channel to the resolvers: plaintext without TLS
 * files; with them TLS, the server verified against the CA (the system's
 * roots when only a client certificate is given). Files are read once, here.
 */
export function channelCredentials(files: ClientTlsFiles | undefined): ChannelCredentials {
  if (!files || !tlsRequested(files)) return credentials.createInsecure();
  if ((files.cert === undefined) !== (files.key === undefined)) {
    const [has, lacks] = files.cert !== undefined ? ['certificate', 'key'] : ['key', 'certificate'];
    throw new StrataError(Errno.EINVAL, `a TLS client ${has} needs its ${lacks} too (--tls-cert and --tls-key, or $${TLS_ENV.cert} and $${TLS_ENV.key})`);
  }
  const ca = files.ca !== undefined ? readPem(files.ca, 'CA') : null;
  const key = files.key !== undefined ? readPem(files.key, 'key') : null;
  const cert = files.cert !== undefined ? readPem(files.cert, 'certificate') : null;
  let creds: ChannelCredentials;
  try {
    creds = credentials.createSsl(ca, key, cert);
  } catch (err) {
    throw new StrataError(Errno.EINVAL, `the TLS files do not make a usable identity: ${errorMessage(err)}`, { cause: err });
  }
  return withoutIpServerName(creds);
}

interface SecureConnector {
  connectionOptions?: { servername?: string };
}

/**
 * grpc-js sends the target host as the TLS server name (SNI) even when it
 * is an IP address, which RFC 6066 forbids and node answers with a
 * DEP0123 warning on stderr of every command. Without it node verifies the
 * certificate against the host itself (its IP SANs), as it should.
 */
function withoutIpServerName(creds: ChannelCredentials): ChannelCredentials {
  const inner = creds as unknown as { _createSecureConnector?: (...args: unknown[]) => SecureConnector };
  const original = inner._createSecureConnector?.bind(creds);
  if (!original) return creds;
  inner._createSecureConnector = (...args: unknown[]): SecureConnector => {
    const connector = original(...args);
    const o = connector.connectionOptions;
    if (o?.servername !== undefined && isIP(o.servername) !== 0) delete o.servername;
    return connector;
  };
  return creds;
}
