import * as path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_RESOLVER, TLS_ENV, addressListProblem, exportTlsEnv, type StrataClient } from '@strata/client';
import { Errno, StrataError } from '@strata/errors';
import { jsonDocument } from './format';
import { ProgressLine, type ProgressStream, type ProgressTimers } from './progress';

/** The options every command sees (declared once, on the root command). */
export interface GlobalOptions {
  json?: boolean;
  resolver?: string;
  /** Seconds a resolver has to answer (--timeout). */
  timeout?: number;
  /** TLS: the CA of the resolvers' certificates, and this client's certificate and key (mutual TLS). */
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** Where output goes; tests and embedding programs pass their own. */
export interface Io {
  /** Writes command output; when it returns a promise, the next write waits for it (a slow or full pipe). */
  out(text: string | Buffer): void | Promise<void>;
  /** A terminal for progress lines; undefined: no progress (stderr is not a TTY). */
  progress?: ProgressStream;
  /** Output goes to that same terminal: a progress line is taken down before each write. */
  outIsTerminal?: boolean;
  timers?: ProgressTimers;
}

/**
 * A failure the CLI found itself (a bad --resolver, a mountpoint that is not
 * empty): the message is the whole story, printed without an errno suffix.
 */
export class CliError extends StrataError {
  constructor(errno: number, message: string) {
    super(errno, message);
    this.name = 'CliError';
  }
}

/** The options of a command whose output can take a while: `--no-progress`. */
export interface ProgressOption {
  progress?: boolean;
}

/** The help paragraph of a command with a progress line; `counted` is what it counts ("entries"). */
export function progressHelp(counted: string): string {
  return [
    '',
    `Progress: while it runs, a line on stderr shows the ${counted} so far and the time elapsed`,
    '(at most 10 updates a second, erased at the end). Only when stderr is a terminal, with',
    '--json too (the document comes at the end); never in a pipe or file. --no-progress: none.',
  ].join('\n');
}

/** What a command group needs from the program: output, the global options, a client. */
export interface CommandContext {
  io: Io;
  /** Writes output, taking a progress line off the terminal first when they share it. */
  out(text: string | Buffer): void | Promise<void>;
  /** Prints the command's one JSON document. */
  json(value: unknown): void | Promise<void>;
  globals(cmd: Command): GlobalOptions;
  /** Runs `fn` with a client for this command's --resolver, closed afterwards whatever happens. */
  withClient(cmd: Command, fn: (client: StrataClient, g: GlobalOptions) => Promise<void>): Promise<void>;
  /** Runs `fn` with a progress line (or none: not a terminal, --no-progress), erased when it ends. */
  withProgress<T>(o: ProgressOption, label: string, unit: [string, string], fn: (p: ProgressLine | undefined) => Promise<T>): Promise<T>;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 86_400) throw new InvalidArgumentError('expected a number of seconds (0 < s <= 86400)');
  return n;
}

/** Declares --json, --resolver and --timeout on the root command. */
export function addGlobalOptions(program: Command): void {
  program
    .option('--json', 'print one JSON document')
    .option('--resolver <addr>', `resolver address(es) host:port, comma-separated (default $STRATA_RESOLVER or ${DEFAULT_RESOLVER})`)
    .option('--timeout <seconds>', 'how long a resolver has to answer a request (default 10); cat, walk and diff may then stream for longer', seconds)
    .option('--tls-ca <file>', `speak TLS, verifying the resolver against this PEM CA (default $${TLS_ENV.ca})`)
    .option('--tls-cert <file>', `present this PEM certificate to a resolver that wants mutual TLS, with --tls-key (default $${TLS_ENV.cert})`)
    .option('--tls-key <file>', `the PEM private key of --tls-cert (default $${TLS_ENV.key})`);
}

/**
 * The --tls-* flags handed to the client the way the variables are (a flag
 * beats its variable); the files are read, and a missing one reported,
 * when the client is made.
 */
function useTlsFlags(g: GlobalOptions): void {
  const abs = (f: string | undefined): string | undefined => (f === undefined ? undefined : path.resolve(f));
  exportTlsEnv({ ca: abs(g.tlsCa), cert: abs(g.tlsCert), key: abs(g.tlsKey) });
}

/** The resolver list a command will use and where it came from, checked before any connection is tried. */
export function resolverAddresses(g: GlobalOptions, env: NodeJS.ProcessEnv = process.env): string {
  // An empty variable counts as unset (`STRATA_RESOLVER= strata ...`); an empty --resolver does not.
  const fromEnv = env.STRATA_RESOLVER ? env.STRATA_RESOLVER : undefined;
  const spec = g.resolver ?? fromEnv ?? DEFAULT_RESOLVER;
  const bad = addressListProblem(spec);
  if (bad) {
    const origin = g.resolver !== undefined ? '--resolver' : '$STRATA_RESOLVER';
    throw new CliError(Errno.EINVAL, `${origin} '${bad.text}': ${bad.problem}`);
  }
  return spec;
}

export function commandContext(io: Io, clientFor: (g: GlobalOptions) => StrataClient): CommandContext {
  const globals = (cmd: Command): GlobalOptions => cmd.optsWithGlobals<GlobalOptions>();
  let shown: ProgressLine | undefined;
  const out = (text: string | Buffer): void | Promise<void> => {
    if (io.outIsTerminal) shown?.hide();
    return io.out(text);
  };
  return {
    io,
    out,
    json: (value) => out(jsonDocument(value)),
    globals,
    withClient: async (cmd, fn) => {
      const g = globals(cmd);
      const resolver = resolverAddresses(g);
      useTlsFlags(g);
      const client = clientFor({ ...g, resolver });
      try {
        await fn(client, g);
      } finally {
        client.close();
      }
    },
    withProgress: async (o, label, unit, fn) => {
      const line = io.progress && o.progress !== false ? new ProgressLine(io.progress, label, unit, io.timers) : undefined;
      shown = line;
      try {
        return await fn(line);
      } finally {
        line?.done();
        shown = undefined;
      }
    },
  };
}
