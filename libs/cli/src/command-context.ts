import type { Command } from 'commander';
import type { StrataClient } from '@strata/client';
import { jsonDocument } from './format';

/** The options every command sees (declared once, on the root command). */
export interface GlobalOptions {
  json?: boolean;
  resolver?: string;
}

/** Where output goes; tests and embedding programs pass their own. */
export interface Io {
  out(text: string | Buffer): void;
}

/** What a command group needs from the program: output, the global options, a client. */
export interface CommandContext {
  io: Io;
  /** Prints the command's one JSON document. */
  json(value: unknown): void;
  globals(cmd: Command): GlobalOptions;
  /** Runs `fn` with a client for this command's --resolver, closed afterwards whatever happens. */
  withClient(cmd: Command, fn: (client: StrataClient, g: GlobalOptions) => Promise<void>): Promise<void>;
}

/** Declares --json and --resolver on the root command. */
export function addGlobalOptions(program: Command): void {
  program
    .option('--json', 'print one JSON document')
    .option('--resolver <addr>', 'resolver address(es), comma-separated (default $STRATA_RESOLVER or 127.0.0.1:7400)');
}

export function commandContext(io: Io, clientFor: (g: GlobalOptions) => StrataClient): CommandContext {
  const globals = (cmd: Command): GlobalOptions => cmd.optsWithGlobals<GlobalOptions>();
  return {
    io,
    json: (value) => io.out(jsonDocument(value)),
    globals,
    withClient: async (cmd, fn) => {
      const g = globals(cmd);
      const client = clientFor(g);
      try {
        await fn(client, g);
      } finally {
        client.close();
      }
    },
  };
}
