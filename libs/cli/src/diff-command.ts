import type { Command } from 'commander';
import type { Change } from '@strata/client';
import { parseLayerRef } from '@strata/layers';
import { progressHelp, type CommandContext, type ProgressOption } from './command-context';
import { attrJson, pathJson, pathText } from './format';

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
        const all: Change[] = [];
        await ctx.withProgress(o, 'diff', ['change', 'changes'], async (progress) => {
          for await (const batch of c.diff(parseLayerRef(from), parseLayerRef(to), o.path)) {
            progress?.add(batch.length);
            if (g.json) all.push(...batch);
            else for (const ch of batch) await out(`${ch.kind[0].toUpperCase()} ${pathText(ch.path)}\n`);
          }
        });
        if (g.json) {
          await json({
            changes: all.map((ch) => ({
              ...pathJson(ch.path),
              kind: ch.kind,
              before: ch.before ? attrJson(ch.before) : null,
              after: ch.after ? attrJson(ch.after) : null,
            })),
          });
        }
      }),
    );
}
