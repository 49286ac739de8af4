import { Command } from 'commander';
import type { StrataClient } from '@strata/client';
import { addGlobalOptions, commandContext, type GlobalOptions, type Io } from './command-context';
import { addDiffCommand } from './diff-command';
import { addLayerCommands } from './layer-commands';
import { addMountCommands } from './mount-commands';
import { addReadCommands } from './read-commands';

/**
 * The client commands of DESIGN.md §5 (everything but `resolver` and
 * `agent`, which run the services). Each action returns when its output is
 * written; errors propagate to the caller, which prints one line.
 */
export function buildProgram(io: Io, clientFor: (g: GlobalOptions) => StrataClient): Command {
  const program = new Command('strata').description('project layered filesystem images: manage layers, read them through the API');
  addGlobalOptions(program);
  program.showHelpAfterError().configureOutput({ writeOut: (s) => io.out(s) });
  program.addHelpText(
    'after',
    '\nServices (see `strata resolver --help`, `strata agent --help`):\n  resolver   serve the strata.v1 API over an image store\n  agent      hold the FUSE mounts of this host',
  );
  const ctx = commandContext(io, clientFor);
  // The order here is the order of `strata --help`.
  addLayerCommands(program, ctx);
  addReadCommands(program, ctx);
  addDiffCommand(program, ctx);
  addMountCommands(program, ctx);
  return program;
}
