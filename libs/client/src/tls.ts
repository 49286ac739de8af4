import { isIP } from 'node:net';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { Errno, StrataError, errorMessage } from '@strata/errors';
import { readPemFile } from '@strata/protocol';

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


/** The files read into what node's TLS takes; a problem is one StrataError naming the file. */
function secureContextOf(files: ClientTlsFiles): SecureContext {
  const options: SecureContextOptions = {};
  if (files.ca !== undefined) options.ca = readPemFile(files.ca, 'CA');
  if (files.key !== undefined) options.key = readPemFile(files.key, 'key');
  if (files.cert !== undefined) options.cert = readPemFile(files.cert, 'certificate');
  try {
    // Without a CA of its own, node's default roots (createSecureContext adds them when `ca` is unset).
    return createSecureContext(options);
  } catch (err) {
    throw new StrataError(Errno.EINVAL, `the TLS files do not make a usable identity: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * The credentials of every channel to the resolvers: plaintext without TLS
 * files; with them TLS, the server verified against the CA (the system's
 * roots when only a client certificate is given). Files are read here, and
 * again by reloadTls().
 */
export function channelCredentials(files: ClientTlsFiles | undefined): ChannelCredentials {
  if (!files || !tlsRequested(files)) return credentials.createInsecure();
  if ((files.cert === undefined) !== (files.key === undefined)) {
    const [has, lacks] = files.cert !== undefined ? ['certificate', 'key'] : ['key', 'certificate'];
    throw new StrataError(Errno.EINVAL, `a TLS client ${has} needs its ${lacks} too (--tls-cert and --tls-key, or $${TLS_ENV.cert} and $${TLS_ENV.key})`);
  }
  const context = secureContextOf(files);
  const key = JSON.stringify([files.ca, files.cert, files.key]);
  // One entry per set of files, however many clients use it: the registry stays as small as the configuration.
  let tls = RELOADABLE.get(key);
  if (tls) tls.context = context;
  else RELOADABLE.set(key, (tls = { files: { ...files }, context, connectors: new Set() }));
  const creds = withConnectorHook(credentials.createFromSecureContext(context), tls);
  CONTEXT_OF.set(creds, tls);
  return creds;
}

/** The TLS files behind credentials channelCredentials() made, for other connections to the same resolvers. */
const CONTEXT_OF = new WeakMap<ChannelCredentials, Reloadable>();

/** The secure context channels of these credentials connect with now (as reloadTls keeps it); undefined for credentials made elsewhere. */
export function channelSecureContext(creds: ChannelCredentials): SecureContext | undefined {
  return CONTEXT_OF.get(creds)?.context;
}

interface SecureConnector {
  connectionOptions?: { servername?: string; secureContext?: SecureContext };
}

/** One set of TLS files in use, and the connectors (one per resolver address and channel) that connect with them. */
interface Reloadable {
  files: ClientTlsFiles;
  context: SecureContext;
  connectors: Set<WeakRef<SecureConnector>>;
}

const RELOADABLE = new Map<string, Reloadable>();

/**
 * Reads every client's TLS files again (the agent on SIGHUP): connections
 * made from then on present the new certificate and trust the new CA; open
 * ones (Session streams) keep theirs. All files are read before any is
 * used, so a bad one changes nothing and throws. Returns how many sets of
 * files were read.
 */
export function reloadTls(): number {
  const entries = [...RELOADABLE.values()];
  const fresh = entries.map((r) => secureContextOf(r.files));
  entries.forEach((r, i) => {
    r.context = fresh[i];
    for (const ref of r.connectors) {
      const c = ref.deref();
      if (c?.connectionOptions) c.connectionOptions.secureContext = r.context;
      else r.connectors.delete(ref);
    }
  });
  return entries.length;
}

/**
 * Each connector grpc-js makes from these credentials gets the current
 * context (kept up to date by reloadTls), and no server name for an IP
 * target: grpc-js sends the host as SNI even when it is an address, which
 * RFC 6066 forbids and node answers with a DEP0123 warning on stderr of
 * every command; without it node checks the certificate against the host
 * itself (its IP SANs), as it should. Relies on grpc-js 1.14's connector
 * holding its tls.connect options in `connectionOptions`.
 */
function withConnectorHook(creds: ChannelCredentials, tls: Reloadable): ChannelCredentials {
  const inner = creds as unknown as { _createSecureConnector?: (...args: unknown[]) => SecureConnector };
  const original = inner._createSecureConnector?.bind(creds);
  if (!original) return creds;
  inner._createSecureConnector = (...args: unknown[]): SecureConnector => {
    const connector = original(...args);
    const o = connector.connectionOptions;
    if (o) {
      if (o.servername !== undefined && isIP(o.servername) !== 0) delete o.servername;
      o.secureContext = tls.context;
      tls.connectors.add(new WeakRef(connector));
    }
    return connector;
  };
  return creds;
}
