import { InvalidArgumentError, type Command } from 'commander';
import { Errno } from '@strata/errors';
import { PERMISSIONS, formatLayerSelector, isPermission, parseLayerSelector, type LayerSelector, type Permission } from '@strata/layers';
import { CliError, type CommandContext } from './command-context';
import { grantJson, grantTable, grantsJson } from './policy-format';

function permission(value: string): Permission {
  if (!isPermission(value)) throw new CliError(Errno.EINVAL, `permission must be ${PERMISSIONS.join(' or ')}, not "${value}"`);
  return value;
}

function selector(value: string): LayerSelector {
  try {
    return parseLayerSelector(value);
  } catch (err) {
    throw new CliError(Errno.EINVAL, `LAYER "${value}": ${(err as Error).message} (an id, a name, or a name prefix ending in *)`);
  }
}

function nonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

const LAYER_HELP = 'a layer id, a name, or a name prefix ending in * (quote it: "vm-*"; "*" is every layer)';
const IDENTITY_HELP = "a client certificate's URI SAN (else its CN), or a host user unix-user:NAME / unix-group:NAME (unix-user:* is every host user)";

const ABOUT = [
  '',
  'read covers stat, ls, cat, readlink, walk, diff, layer get and mount of the layer; admin also',
  'update and delete, creating layers with a name it covers, and grant/revoke on it. The resolver',
  'enforces grants when it serves mutual TLS (--tls-client-ca); its --admin identities may do everything.',
].join('\n');

/** `strata grant`, `strata revoke`, `strata grants`: the access policy. */
export function addPolicyCommands(program: Command, ctx: CommandContext): void {
  const { out, json } = ctx;
  program
    .command('grant')
    .description('let an identity read or administer layers')
    .argument('<identity>', IDENTITY_HELP)
    .argument('<permission>', 'read or admin (admin implies read)')
    .argument('<layer>', LAYER_HELP)
    .option('--expect-generation <g>', 'fail unless the policy still has this generation', nonNegative)
    .addHelpText('after', ABOUT)
    .action((identity: string, p: string, layer: string, o: { expectGeneration?: number }, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const res = await c.grant(identity, permission(p), selector(layer), o.expectGeneration);
        if (g.json) await json({ ...grantJson(res.grant), generation: res.generation, changed: res.changed });
        else if (res.changed) await out(`granted ${res.grant.permission} on ${formatLayerSelector(res.grant.layer)} to ${identity} (policy generation ${res.generation})\n`);
        else await out(`${identity} already has ${res.grant.permission} on ${formatLayerSelector(res.grant.layer)} (policy generation ${res.generation})\n`);
      }),
    );
  program
    .command('revoke')
    .description('take a grant back (open Sessions lose it within a second)')
    .argument('<identity>', IDENTITY_HELP)
    .argument('<permission>', 'read or admin, as it was granted')
    .argument('<layer>', `${LAYER_HELP}, as it was granted`)
    .option('--expect-generation <g>', 'fail unless the policy still has this generation', nonNegative)
    .addHelpText('after', ABOUT)
    .action((identity: string, p: string, layer: string, o: { expectGeneration?: number }, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const perm = permission(p);
        const sel = selector(layer);
        const res = await c.revoke(identity, perm, sel, o.expectGeneration);
        if (g.json) await json({ identity, permission: perm, layer: formatLayerSelector(sel), generation: res.generation, changed: res.changed });
        else if (res.changed) await out(`revoked ${perm} on ${formatLayerSelector(sel)} from ${identity} (policy generation ${res.generation})\n`);
        else await out(`${identity} has no ${perm} grant on ${formatLayerSelector(sel)}: nothing revoked (policy generation ${res.generation})\n`);
      }),
    );
  program
    .command('grants')
    .description('the grants you may see (every grant for a resolver --admin)')
    .addHelpText('after', ABOUT)
    .action((_o: unknown, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const listing = await c.listGrants();
        if (g.json) await json(grantsJson(listing));
        else await out(`${grantTable(listing)}\n`);
      }),
    );
}
