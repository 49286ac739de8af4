import { Command, InvalidArgumentError, Option } from 'commander';
import { StrataClient, type UpdateLayerOptions } from '@strata/client';
import { LAYER_TYPES, MOUNT_OPTIONS, isLayerType, isMountOption, parseLayerRef, type LayerType, type MountOption } from '@strata/layers';
import { addMountCommands } from './mount-commands';
import { attrJson, jsonDocument, layerJson, layerTable, lsLine, pathJson, pathText, statText } from './format';

export interface GlobalOptions {
  json?: boolean;
  resolver?: string;
}

/** Where output goes; tests and embedding programs pass their own. */
export interface Io {
  out(text: string | Buffer): void;
}

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

/**
 * The client commands of DESIGN.md §5 (everything but `resolver` and
 * `agent`, which run the services). Each action returns when its output is
 * written; errors propagate to the caller, which prints one line.
 */
export function buildProgram(io: Io, clientFor: (g: GlobalOptions) => StrataClient): Command {
  const program = new Command('strata')
    .description('project layered filesystem images: manage layers, read them through the API')
    .option('--json', 'print one JSON document')
    .option('--resolver <addr>', 'resolver address(es), comma-separated (default $STRATA_RESOLVER or 127.0.0.1:7400)')
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.out(s) });
  program.addHelpText(
    'after',
    '\nServices (see `strata resolver --help`, `strata agent --help`):\n  resolver   serve the strata.v1 API over an image store\n  agent      hold the FUSE mounts of this host',
  );

  const run = async (cmd: Command, fn: (c: StrataClient, g: GlobalOptions) => Promise<void>): Promise<void> => {
    const g = cmd.optsWithGlobals<GlobalOptions>();
    const client = clientFor(g);
    try {
      await fn(client, g);
    } finally {
      client.close();
    }
  };
  const json = (value: unknown): void => io.out(jsonDocument(value));

  const layer = program.command('layer').description('manage layers in the catalog');
  layer
    .command('create')
    .description('register a layer')
    .requiredOption('--source <uri>', 'where its data is: dir:<path relative to the store root>')
    .option('--path <p>', 'root of the layer inside the source', '/')
    .option('--base <layer>', 'the layer it is derived from (id or name)')
    .addOption(new Option('--type <t>', 'base, snapshot, incremental or overlay (default: base without --base, else snapshot)').argParser(layerType))
    .option('--name <n>', 'a unique name')
    .option('--option <o>', `mount option (repeatable): ${MOUNT_OPTIONS.join(', ')}`, collectOption)
    .action((o: { source: string; path: string; base?: string; type?: LayerType; name?: string; option?: MountOption[] }, cmd: Command) =>
      run(cmd, async (c, g) => {
        const l = await c.createLayer({
          source: o.source,
          filesystemPath: o.path,
          base: o.base ? parseLayerRef(o.base) : undefined,
          layerType: o.type,
          name: o.name,
          mountOptions: o.option,
        });
        if (g.json) json(layerJson(l));
        else io.out(`created layer ${l.layerId}${l.name ? ` (${l.name})` : ''}\n`);
      }),
    );
  layer
    .command('list')
    .description('every layer')
    .action((_o: unknown, cmd: Command) =>
      run(cmd, async (c, g) => {
        const layers = await c.listLayers();
        if (g.json) json({ layers: layers.map(layerJson) });
        else io.out(`${layerTable(layers)}\n`);
      }),
    );
  layer
    .command('get')
    .description('one layer and its chain down to the base image')
    .argument('<layer>', 'id or name')
    .action((ref: string, _o: unknown, cmd: Command) =>
      run(cmd, async (c, g) => {
        const { layer: l, chain } = await c.getLayer(parseLayerRef(ref));
        // `chain` in the JSON lists the bases below the layer (the shape scripts rely on).
        if (g.json) json({ ...layerJson(l), chain: chain.slice(1).map(layerJson) });
        else io.out(`${layerTable(chain)}\n`);
      }),
    );
  layer
    .command('update')
    .description('change a layer (its generation goes up)')
    .argument('<layer>', 'id or name')
    .option('--name <n>', 'new name ("" removes it)')
    .option('--source <uri>', 'new source')
    .option('--path <p>', 'new root inside the source')
    .option('--base <layer>', 'new base layer')
    .addOption(new Option('--type <t>', 'new type').argParser(layerType))
    .option('--option <o>', 'replace the mount options (repeatable)', collectOption)
    .option('--expect-generation <g>', 'fail unless the layer still has this generation', nonNegative)
    .action(
      (
        ref: string,
        o: { name?: string; source?: string; path?: string; base?: string; type?: LayerType; option?: MountOption[]; expectGeneration?: number },
        cmd: Command,
      ) =>
        run(cmd, async (c, g) => {
          const update: UpdateLayerOptions = {
            name: o.name,
            source: o.source,
            filesystemPath: o.path,
            base: o.base ? parseLayerRef(o.base) : undefined,
            layerType: o.type,
            mountOptions: o.option,
            expectedGeneration: o.expectGeneration,
          };
          const l = await c.updateLayer(parseLayerRef(ref), update);
          if (g.json) json(layerJson(l));
          else io.out(`updated layer ${l.layerId} (generation ${l.generation})\n`);
        }),
    );
  layer
    .command('delete')
    .description('remove a layer that no other layer derives from')
    .argument('<layer>', 'id or name')
    .option('--expect-generation <g>', 'fail unless the layer still has this generation', nonNegative)
    .action((ref: string, o: { expectGeneration?: number }, cmd: Command) =>
      run(cmd, async (c, g) => {
        await c.deleteLayer(parseLayerRef(ref), o.expectGeneration);
        if (g.json) json({ deleted: ref });
        else io.out(`deleted ${ref}\n`);
      }),
    );

  program
    .command('stat')
    .description('metadata of a path inside a layer')
    .argument('<layer>')
    .argument('<path>')
    .action((ref: string, p: string, _o: unknown, cmd: Command) =>
      run(cmd, async (c, g) => {
        const r = parseLayerRef(ref);
        const attr = await c.stat(r, p);
        const link = fileTypeIsLink(attr.mode) ? pathText(await c.readLink(r, p)) : undefined;
        if (g.json) json({ path: p, attr: attrJson(attr), ...(link !== undefined ? { linkTarget: link } : {}) });
        else io.out(`${statText(p, attr, link)}\n`);
      }),
    );
  program
    .command('ls')
    .description('entries of a directory inside a layer (ls -l style)')
    .argument('<layer>')
    .argument('[path]', 'directory', '/')
    .action((ref: string, p: string, _o: unknown, cmd: Command) =>
      run(cmd, async (c, g) => {
        const entries = await c.readDir(parseLayerRef(ref), p);
        if (g.json) json({ path: p, entries: entries.map((e) => ({ name: pathJson(e.name).path, ...nameBytes(e.name), attr: e.attr ? attrJson(e.attr) : null })) });
        else for (const e of entries) if (e.attr) io.out(`${lsLine(pathText(e.name), e.attr)}\n`);
      }),
    );
  program
    .command('cat')
    .description('contents of a file inside a layer')
    .argument('<layer>')
    .argument('<path>')
    .action((ref: string, p: string, _o: unknown, cmd: Command) =>
      run(cmd, async (c, g) => {
        if (g.json) {
          const data = await c.readFile(parseLayerRef(ref), p);
          json({ path: p, size: data.length, contentBase64: data.toString('base64') });
          return;
        }
        for await (const chunk of c.read(parseLayerRef(ref), p)) io.out(chunk);
      }),
    );
  program
    .command('readlink')
    .description('target of a symlink inside a layer, verbatim')
    .argument('<layer>')
    .argument('<path>')
    .action((ref: string, p: string, _o: unknown, cmd: Command) =>
      run(cmd, async (c, g) => {
        const target = await c.readLink(parseLayerRef(ref), p);
        if (g.json) json({ path: p, target: pathJson(target).path, ...(pathJson(target).pathBase64 ? { targetBase64: target.toString('base64') } : {}) });
        else io.out(`${pathText(target)}\n`);
      }),
    );
  program
    .command('diff')
    .description('what changed from one layer to another: A added, M modified, D deleted (a deleted tree once, at its top)')
    .argument('<from>')
    .argument('<to>')
    .option('--path <p>', 'only under this directory', '/')
    .action((from: string, to: string, o: { path: string }, cmd: Command) =>
      run(cmd, async (c, g) => {
        const all = [];
        for await (const batch of c.diff(parseLayerRef(from), parseLayerRef(to), o.path)) {
          if (g.json) all.push(...batch);
          else for (const ch of batch) io.out(`${ch.kind[0].toUpperCase()} ${pathText(ch.path)}\n`);
        }
        if (g.json) {
          json({
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
  addMountCommands(program, io);
  return program;
}

function fileTypeIsLink(mode: number): boolean {
  return (mode & 0o170000) === 0o120000;
}

function nameBytes(name: Buffer): { nameBase64?: string } {
  const j = pathJson(name);
  return j.pathBase64 ? { nameBase64: j.pathBase64 } : {};
}
