import { Command } from 'commander';
import type { StrataClient } from '@strata/client';
import { addGlobalOptions, commandContext, type GlobalOptions, type Io } from './command-context';
import { addCompletionCommand } from './completion-command';
import { addDiffCommand } from './diff-command';
import { addInspectCommand } from './inspect-command';
import { addLayerCommands } from './layer-commands';
import { addMountCommands } from './mount-commands';
import { addPolicyCommands } from './policy-commands';
import { addReadCommands } from './read-commands';
import { addStatusCommand } from './status-command';
import { addVersionCommand, clientVersionText } from './version-command';
import { addLayerCheckCommand } from './layer-check-command';
import { addLayerExtentsCommand } from './layer-extents-command';

/**
 * The client commands of docs/design.md §5 (everything but `resolver` and
 * `agent`, which run the services). Each action returns when its output is
 * written; errors propagate to the caller, which prints one line.
 */
export function buildProgram(io: Io, clientFor: (g: GlobalOptions) => StrataClient): Command {
  const program = new Command('strata').description('project layered filesystem images: manage layers, read them through the API');
  addGlobalOptions(program);
  program.version(clientVersionText(), '--version', "print this client's version (and commit, and node) and exit");
  program.configureOutput({
    writeOut: (s) => void io.out(s),
    // Commander's "error: ..." as the one line every other failure is, pointing at the help instead of printing it.
    outputError: (s, write) => write(`strata: ${s.trim().replace(/^error: /, '')} (--help shows the usage)\n`),
  });
  program.addHelpText(
    'after',
    [
      '',
      'Services (see `strata resolver --help`, `strata agent --help`):',
      '  resolver   serve the strata.v1 API over an image store',
      '  agent      hold the FUSE mounts of this host',
      '',
      'Exit status: 0 on success; 1 on any failure, bad arguments included, with one line on stderr',
      '(with --json: one JSON object, {"error":{...}}, see docs/cli.md).',
      'Output into a pipe whose reader has gone (`| head`) ends quietly with 0.',
    ].join('\n'),
  );
  const ctx = commandContext(io, clientFor);
  // The order here is the order of `strata --help`.
  addLayerCommands(program, ctx);
  const layer = program.commands.find((c) => c.name() === 'layer');
  if (layer) addLayerCheckCommand(layer, ctx);
  if (layer) addLayerExtentsCommand(layer, ctx);
  addReadCommands(program, ctx);
  addDiffCommand(program, ctx);
  addInspectCommand(program, ctx);
  addMountCommands(program, ctx);
  addStatusCommand(program, ctx);
  addPolicyCommands(program, ctx);
  addVersionCommand(program, ctx);
  // Last: it completes every command added before it.
  addCompletionCommand(program, ctx);
  return program;
}
