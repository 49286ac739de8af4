import { Command, CommanderError } from 'commander';
import { ConfigError } from './problem';
import type { OptionTable } from './declare';
import type { LoadedConfig, ServiceConfig } from './service-config';

/** Exit status of a service whose configuration is wrong (flags, variables or file). */
export const EXIT_CONFIG = 2;
/** Log levels both services accept (pino's). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** One line per problem on stderr, prefixed with the service's name, then exit. */
export function failWith(service: string, code: number, lines: readonly string[]): never {
  for (const line of lines) process.stderr.write(`${service}: ${line}\n`);
  process.exit(code);
}

export interface ServiceCommand {
  /** As it is typed: `strata resolver`. */
  service: string;
  description: string;
  /** One `key: value` line of the file, for the help text. */
  example: string;
}

export interface ServiceArgs<T extends OptionTable> {
  loaded: LoadedConfig<T>;
  checkOnly: boolean;
  json: boolean;
}

/**
 * The command line of a service: its declared options as flags, plus
 * --check-config and --json; then flags, variables and file loaded and
 * checked. Usage errors and every configuration problem are one line each
 * and exit EXIT_CONFIG.
 */
export function parseServiceArgs<T extends OptionTable>(config: ServiceConfig<T>, c: ServiceCommand, argv: readonly string[]): ServiceArgs<T> {
  const program = new Command(c.service)
    .description(c.description)
    .addHelpText('after', `\nEvery option can be set in the --config file under its flag name (${c.example}); a flag beats a variable, which beats the file.`)
    .exitOverride()
    // Usage errors are one line like every other start-up error (commander's suggestion joined onto it).
    .configureOutput({ outputError: (text, write) => write(`${c.service}: ${text.replace(/^error: /, '').trim().replace(/\n+/g, ' ')}\n`) });
  for (const spec of config.flagSpecs()) {
    if (spec.collect) program.option(spec.flags, spec.description, spec.collect);
    else program.option(spec.flags, spec.description);
  }
  program
    .option('--check-config', 'check the configuration (file, variables, flags), print it with where each value came from, and exit: 0 valid, 2 not')
    .option('--json', 'with --check-config: print it as JSON');
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : EXIT_CONFIG);
    throw err;
  }
  const flags = program.opts<Record<string, unknown>>();
  if (flags.json === true && flags.checkConfig !== true) failWith(c.service, EXIT_CONFIG, ['--json goes with --check-config']);
  try {
    return { loaded: config.load({ flags, env: process.env }), checkOnly: flags.checkConfig === true, json: flags.json === true };
  } catch (err) {
    if (err instanceof ConfigError) failWith(c.service, EXIT_CONFIG, err.lines);
    throw err;
  }
}
