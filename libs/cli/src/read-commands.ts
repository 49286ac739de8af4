import type { Command } from 'commander';
import { parseLayerRef } from '@strata/layers';
import { isLinkMode } from '@strata/posix';
import type { CommandContext } from './command-context';
import { attrJson, lsLine, pathJson, pathText, statText } from './format';

function nameBytes(name: Buffer): { nameBase64?: string } {
  const j = pathJson(name);
  return j.pathBase64 ? { nameBase64: j.pathBase64 } : {};
}

/** `strata stat|ls|cat|readlink`: one path inside a layer, read through the API. */
export function addReadCommands(program: Command, ctx: CommandContext): void {
  const { io, json } = ctx;
  program
    .command('stat')
    .description('metadata of a path inside a layer')
    .argument('<layer>')
    .argument('<path>')
    .action((ref: string, p: string, _o: unknown, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const r = parseLayerRef(ref);
        const attr = await c.stat(r, p);
        const link = isLinkMode(attr.mode) ? pathText(await c.readLink(r, p)) : undefined;
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
      ctx.withClient(cmd, async (c, g) => {
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
      ctx.withClient(cmd, async (c, g) => {
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
      ctx.withClient(cmd, async (c, g) => {
        const target = await c.readLink(parseLayerRef(ref), p);
        if (g.json) json({ path: p, target: pathJson(target).path, ...(pathJson(target).pathBase64 ? { targetBase64: target.toString('base64') } : {}) });
        else io.out(`${pathText(target)}\n`);
      }),
    );
}
