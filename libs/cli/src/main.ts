import { CommanderError, type Command } from 'commander';
import { StrataClient, isTransportError } from '@strata/client';
import { errorMessage, isStrataError } from '@strata/errors';
import { CliError, type Io } from './command-context';
import { errorJson, usageErrorJson, wantsJson } from './error-output';
import { buildProgram } from './program';
import { eraseProgress } from './progress';

/** Exit status of every failure (bad arguments included, as commander does); 0 otherwise. */
export const EXIT_FAILURE = 1;

/**
 * The one line a failure prints after "strata: ". Errors the resolver sent
 * end in their errno (scripts and bug reports want it); a failure to reach a
 * resolver, or one the CLI found itself, is already a whole sentence.
 */
export function errorLine(err: unknown): string {
  if (isTransportError(err) || err instanceof CliError) return err.message;
  if (isStrataError(err)) return `${err.message} (${err.errnoName})`;
  return errorMessage(err);
}

/**
 * stdout as the commands write it. Writes wait for 'drain' when the pipe is
 * full, so `strata cat big | slow` holds one chunk in memory, not the file.
 * A reader that went away (`| head`) ends the program at once with status 0
 * and nothing on stderr, as cat and ls do.
 */
function stdoutIo(): Io {
  const stdout = process.stdout;
  stdout.on('error', (err: NodeJS.ErrnoException) => {
    eraseProgress();
    if (err.code === 'EPIPE') process.exit(0);
    process.stderr.write(`strata: cannot write output: ${errorMessage(err)}\n`);
    process.exit(EXIT_FAILURE);
  });
  const stderr = process.stderr;
  return {
    out: (text) => (stdout.write(text) ? undefined : new Promise<void>((resolve) => stdout.once('drain', resolve))),
    progress: stderr.isTTY ? stderr : undefined,
    outIsTerminal: stdout.isTTY === true,
  };
}

/** `strata <command> ...` for the client commands; prints one line and exits non-zero on error. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram(stdoutIo(), (g) => new StrataClient({ resolver: g.resolver, deadlineMs: g.timeout !== undefined ? g.timeout * 1000 : undefined }));
  program.exitOverride();
  // --json: a failure is one JSON object on stderr too (docs/cli.md), bad arguments included.
  const jsonErrors = wantsJson(argv);
  if (jsonErrors) {
    const outputError = (s: string, write: (str: string) => void): void => write(`${JSON.stringify(usageErrorJson(s))}\n`);
    // Each subcommand has its own copy of the output settings.
    const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
    for (const c of all(program)) c.configureOutput({ ...c.configureOutput(), outputError });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    process.stderr.write(jsonErrors ? `${JSON.stringify(errorJson(err, errorLine(err)))}\n` : `strata: ${errorLine(err)}\n`);
    process.exit(EXIT_FAILURE);
  }
}

if (require.main === module) void main(process.argv.slice(2));
