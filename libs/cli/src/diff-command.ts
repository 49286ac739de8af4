import type { Command } from 'commander';
import type { Change } from '@strata/client';
import { parseLayerRef } from '@strata/layers';
import { progressHelp, type CommandContext, type ProgressOption } from './command-context';
import type { ErrorInfo } from '@strata/protocol';
import { attrJson, pathJson, pathText } from './format';
import { DamageCount, errorInfoJson } from './read-commands';

/** A change that could not be compared (a damaged object on one side) carries the error, when the client passes it on. */
type ChangeWithError = Change & { error?: ErrorInfo };

/** `strata diff`: text lines as the batches arrive; the JSON document once the diff is complete. */
export function addDiffCommand(program: Command, ctx: CommandContext): void {
  const { out, json } = ctx;
  program
    .command('diff')
    .description('what changed from one layer to another: A added, M modified, D deleted (a deleted tree once, at its top)')
    .argument('<from>')
    .argument('<to>')
    .option('--path <p>', 'only under this directory', '/')
    .option('--no-progress', 'no progress line on stderr')
    .addHelpText('after', progressHelp('changes'))
    .action((from: string, to: string, o: { path: string } & ProgressOption, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const all: ChangeWithError[] = [];
        const damaged = new DamageCount();
        await ctx.withProgress(o, 'diff', ['change', 'changes'], async (progress) => {
          for await (const batch of c.diff(parseLayerRef(from), parseLayerRef(to), o.path)) {
            progress?.add(batch.length);
            for (const ch of batch as ChangeWithError[]) {
              if (ch.error) damaged.add(ch.path, ch.error);
              if (g.json) all.push(ch);
              else await out(`${ch.kind[0].toUpperCase()} ${pathText(ch.path)}${ch.error ? `  [${ch.error.errnoName}: ${ch.error.message}]` : ''}\n`);
            }
          }
        });
        if (g.json) {
          await json({
            changes: all.map((ch) => ({
              ...pathJson(ch.path),
              kind: ch.kind,
              before: ch.before ? attrJson(ch.before) : null,
              after: ch.after ? attrJson(ch.after) : null,
              ...(ch.error ? { error: errorInfoJson(ch.error) } : {}),
            })),
          });
        }
        damaged.finish(g.json === true);
      }),
    );
}
