import { CommanderError } from 'commander';
import { StrataClient } from '@strata/client';
import { errorMessage, isStrataError } from '@strata/errors';
import { buildProgram } from './program';

/** `strata <command> ...` for the client commands; prints one line and exits non-zero on error. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram(
    { out: (text) => process.stdout.write(text) },
    (g) => new StrataClient({ resolver: g.resolver }),
  );
  program.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    const message = isStrataError(err) ? `${err.message} (${err.errnoName})` : errorMessage(err);
    process.stderr.write(`strata: ${message}\n`);
    process.exit(1);
  }
}

if (require.main === module) void main(process.argv.slice(2));
