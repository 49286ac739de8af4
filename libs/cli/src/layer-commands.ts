import { InvalidArgumentError, Option, type Command } from 'commander';
import type { UpdateLayerOptions } from '@strata/client';
import { LAYER_TYPES, MOUNT_OPTIONS, SOURCE_KINDS, isLayerType, isMountOption, parseLayerRef, type LayerType, type MountOption } from '@strata/layers';
import type { CommandContext } from './command-context';
import { layerJson, layerTable } from './format';

function layerType(value: string): LayerType {
  if (!isLayerType(value)) throw new InvalidArgumentError(`expected one of ${LAYER_TYPES.join(', ')}`);
  return value;
}

function collectOption(value: string, previous: MountOption[] = []): MountOption[] {
  if (!isMountOption(value)) throw new InvalidArgumentError(`expected one of ${MOUNT_OPTIONS.join(', ')}`);
  return [...previous, value];
}

function nonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

/** Every source kind `--source` takes, one line each. */
function sourceKindsHelp(): string {
  const width = Math.max(...SOURCE_KINDS.map((k) => k.syntax.length));
  return [
    '',
    'Source kinds:',
    ...SOURCE_KINDS.map((k) => `  ${k.syntax.padEnd(width)}  ${k.what}`),
    '',
    'A disk image source without #N shows the tree its guest mounts (root filesystem and what its fstab mounts from the disk)',
    'when it holds an operating system, else its only filesystem. #N is a partition as Linux numbers it (#2 is vda2),',
    '#VG/LV a logical volume. `strata inspect SOURCE` shows what a disk holds.',
  ].join('\n');
}

/** `strata layer create|list|get|update|delete`: the catalog. */
export function addLayerCommands(program: Command, ctx: CommandContext): void {
  const { out, json } = ctx;
  const layer = program.command('layer').description('manage layers in the catalog');
  layer
    .command('create')
    .description('register a layer')
    .requiredOption('--source <uri>', 'where its data is, a path relative to the store root: dir:FOLDER, or a disk image (kinds below)')
    .option('--path <p>', 'root of the layer inside the source (for btrfs, how a subvolume or snapshot is chosen)', '/')
    .option('--base <layer>', 'the layer it is derived from (id or name)')
    .addOption(new Option('--type <t>', 'base, snapshot, incremental or overlay (default: base without --base, else snapshot)').argParser(layerType))
    .option('--name <n>', 'a unique name')
    .option('--option <o>', `mount option (repeatable): ${MOUNT_OPTIONS.join(', ')}`, collectOption)
    .addHelpText('after', sourceKindsHelp())
    .action((o: { source: string; path: string; base?: string; type?: LayerType; name?: string; option?: MountOption[] }, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const l = await c.createLayer({
          source: o.source,
          filesystemPath: o.path,
          base: o.base ? parseLayerRef(o.base) : undefined,
          layerType: o.type,
          name: o.name,
          mountOptions: o.option,
        });
        if (g.json) await json(layerJson(l));
        else await out(`created layer ${l.layerId}${l.name ? ` (${l.name})` : ''}\n`);
      }),
    );
  layer
    .command('list')
    .description('every layer')
    .action((_o: unknown, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const layers = await c.listLayers();
        if (g.json) await json({ layers: layers.map(layerJson) });
        else await out(`${layerTable(layers)}\n`);
      }),
    );
  layer
    .command('get')
    .description('one layer and its chain down to the base image')
    .argument('<layer>', 'id or name')
    .action((ref: string, _o: unknown, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const { layer: l, chain, image } = await c.getLayer(parseLayerRef(ref));
        // `chain` in the JSON lists the bases below the layer (the shape scripts rely on); `image` only for disk image layers.
        if (g.json) await json({ ...layerJson(l), chain: chain.slice(1).map(layerJson), ...(image ? { image } : {}) });
        else await out(`${layerTable(chain)}\n`);
      }),
    );
  layer
    .command('update')
    .description('change a layer (its generation goes up; values it already has change nothing)')
    .argument('<layer>', 'id or name')
    .option('--name <n>', 'new name ("" removes it)')
    .option('--source <uri>', 'new source')
    .option('--path <p>', 'new root inside the source')
    .option('--base <layer>', 'new base layer')
    .addOption(new Option('--type <t>', 'new type').argParser(layerType))
    .option('--option <o>', 'replace the mount options (repeatable)', collectOption)
    .option('--expect-generation <g>', 'fail unless the layer still has this generation', nonNegative)
    .option('--force', 'change it even though mounts use it (their agents withdraw those mounts)')
    .action(
      (
        ref: string,
        o: { name?: string; source?: string; path?: string; base?: string; type?: LayerType; option?: MountOption[]; expectGeneration?: number; force?: boolean },
        cmd: Command,
      ) =>
        ctx.withClient(cmd, async (c, g) => {
          const update: UpdateLayerOptions = {
            name: o.name,
            source: o.source,
            filesystemPath: o.path,
            base: o.base ? parseLayerRef(o.base) : undefined,
            layerType: o.type,
            mountOptions: o.option,
            expectedGeneration: o.expectGeneration,
            force: o.force,
          };
          // The catalog keeps a layer whose values do not change as it is (same generation); the
          // generation read first tells the two cases apart for the message.
          const before = g.json ? undefined : (await c.getLayer(parseLayerRef(ref))).layer;
          const l = await c.updateLayer(parseLayerRef(ref), update);
          if (g.json) await json(layerJson(l));
          else if (before && before.generation === l.generation) {
            const asked = [o.name, o.source, o.path, o.base, o.type, o.option].some((v) => v !== undefined);
            await out(`layer ${l.layerId} unchanged (generation ${l.generation}): ${asked ? 'it already has these values' : 'nothing to change'}\n`);
          } else await out(`updated layer ${l.layerId} (generation ${l.generation})\n`);
        }),
    );
  layer
    .command('delete')
    .description('remove a layer that no other layer derives from and no mount uses')
    .argument('<layer>', 'id or name')
    .option('--expect-generation <g>', 'fail unless the layer still has this generation', nonNegative)
    .option('--force', 'delete it even though mounts use it (their agents withdraw those mounts)')
    .action((ref: string, o: { expectGeneration?: number; force?: boolean }, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        await c.deleteLayer(parseLayerRef(ref), o.expectGeneration, o.force === true);
        if (g.json) await json({ deleted: ref });
        else await out(`deleted ${ref}\n`);
      }),
    );
}
