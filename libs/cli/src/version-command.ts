import type { Command } from 'commander';
import type { ResolverVersion } from '@strata/client';
import { Errno } from '@strata/errors';
// The module alone, not the package index: a CLI call should not load the logger and OpenTelemetry.
import { buildInfo, versionText, type BuildInfo } from '@strata/telemetry/dist/version';
import { CliError, type CommandContext } from './command-context';

/** `0.1.0 (commit 1a2b3c4d5e6f, node 20.19.0)`: what `strata --version` prints. */
export function clientVersionText(): string {
  return versionText(buildInfo());
}

function resolverLine(r: ResolverVersion): string {
  if (r.error !== undefined) return `resolver ${r.address}  did not answer: ${r.error}`;
  const info: BuildInfo = { version: r.version ?? 'unknown', node: r.node ?? 'unknown', ...(r.commit ? { commit: r.commit } : {}) };
  return `resolver ${r.address}  ${versionText(info)}  ${(r.latencyMs ?? 0).toFixed(1)} ms`;
}

/**
 * `strata version`: this client's build and, through the API, that of every
 * resolver it was given (each asked on its own address, with the round
 * trip). Fails (exit 1) when a resolver did not answer, after printing
 * everything it learnt.
 */
export function addVersionCommand(program: Command, ctx: CommandContext): void {
  program
    .command('version')
    .description('the version of this client and of every resolver it reaches (--resolver, comma-separated)')
    .action((_o: unknown, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const client = buildInfo();
        const resolvers = await c.versions();
        if (g.json) {
          await ctx.json({ client, resolvers: resolvers.map((r) => ({ ...r, ...(r.latencyMs !== undefined ? { latencyMs: Math.round(r.latencyMs * 10) / 10 } : {}) })) });
        } else {
          await ctx.out([`client ${versionText(client)}`, ...resolvers.map(resolverLine)].join('\n') + '\n');
        }
        const silent = resolvers.filter((r) => r.error !== undefined);
        if (silent.length > 0) {
          throw new CliError(Errno.EIO, `${silent.length} of ${resolvers.length} resolver${resolvers.length === 1 ? '' : 's'} did not answer: ${silent.map((r) => r.address).join(', ')}`);
        }
      }),
    );
}
