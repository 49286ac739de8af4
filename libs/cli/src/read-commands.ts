import { InvalidArgumentError, type Command } from 'commander';
import { parseLayerRef } from '@strata/layers';
import { Errno, errnoName } from '@strata/errors';
import { isLinkMode } from '@strata/posix';
import type { ErrorInfo } from '@strata/protocol';
import { progressHelp, type CommandContext, type ProgressOption } from './command-context';
import { attrJson, lsLine, pathJson, pathText, statText } from './format';

function depth(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function nameBytes(name: Buffer): { nameBase64?: string } {
  const j = pathJson(name);
  return j.pathBase64 ? { nameBase64: j.pathBase64 } : {};
}

/** `strata stat|ls|cat|readlink|walk`: paths inside a layer, read through the API. */
export function addReadCommands(program: Command, ctx: CommandContext): void {
  const { out, json } = ctx;
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
        else await out(`${statText(p, attr, link)}\n`);
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
        else for (const e of entries) if (e.attr) await out(`${lsLine(pathText(e.name), e.attr)}\n`);
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
          await json({ path: p, size: data.length, contentBase64: data.toString('base64') });
          return;
        }
        for await (const chunk of c.read(parseLayerRef(ref), p)) await out(chunk);
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
        else await out(`${pathText(target)}\n`);
      }),
    );
  program
    .command('walk')
    .description('every path under a directory inside a layer, parents before children (ls -l style, full paths; --json: one JSON object a line, as they arrive)')
    .argument('<layer>')
    .argument('[path]', 'directory', '/')
    .option('--max-depth <n>', '1: the directory\'s entries only; 0: no limit', depth, 0)
    .option('--no-progress', 'no progress line on stderr')
    .addHelpText('after', progressHelp('entries'))
    .action((ref: string, p: string, o: { maxDepth: number } & ProgressOption, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const damaged = new DamageCount();
        await ctx.withProgress(o, 'walk', ['entry', 'entries'], async (progress) => {
          for await (const batch of c.walk(parseLayerRef(ref), p, { maxDepth: o.maxDepth, includeLinkTargets: true })) {
            progress?.add(batch.length);
            for (const e of batch) {
              const link = e.attr && isLinkMode(e.attr.mode) ? e.linkTarget : undefined;
              // A path that cannot be read (a damaged inode or directory) is reported in its place; the walk goes on.
              if (e.error) damaged.add(e.path, e.error);
              // NDJSON: a tree of millions of entries streams in constant memory, and `| jq -c` or `| head` work as it goes.
              if (g.json) {
                const error = e.error ? { error: errorInfoJson(e.error) } : {};
                await out(`${JSON.stringify({ ...pathJson(e.path), attr: e.attr ? attrJson(e.attr) : null, ...(link ? linkJson(link) : {}), ...error })}\n`);
              } else if (e.error) await out(`${errorEntryLine(e.path, e.error)}\n`);
              else if (e.attr) await out(`${lsLine(pathText(e.path), e.attr)}${link ? ` -> ${pathText(link)}` : ''}\n`);
            }
          }
        });
        damaged.finish(g.json === true);
      }),
    );
}

/** A path whose object could not be read, as ls shows one (`l?????????`), with the errno and why. */
export function errorEntryLine(path: Buffer, error: ErrorInfo): string {
  return `?????????? ${pathText(path)}  [${error.errnoName || errnoName(error.errno)}: ${error.message}]`;
}

export function errorInfoJson(error: ErrorInfo): { errno: string; errnoNumber: number; message: string } {
  return { errno: error.errnoName || errnoName(error.errno), errnoNumber: error.errno, message: error.message };
}

/** Paths a walk or diff could not read: it goes on past them, and fails at the end when there were any. */
export class DamageCount {
  private count = 0;
  private first: { path: Buffer; error: ErrorInfo } | undefined;

  add(path: Buffer, error: ErrorInfo): void {
    this.count++;
    this.first ??= { path, error };
  }

  /**
   * When a path could not be read: says so on stderr, naming the first (one
   * JSON object with --json), and makes the exit status 1 once everything
   * written has reached stdout (a thrown error would exit at once, cutting
   * off output still in the pipe).
   */
  finish(json: boolean): void {
    if (!this.first) return;
    const { path, error } = this.first;
    const name = error.errnoName || errnoName(error.errno);
    const message = `${this.count === 1 ? '1 path' : `${this.count} paths`} could not be read (first: ${pathText(path)}: ${name})`;
    process.stderr.write(
      json ? `${JSON.stringify({ error: { message, errno: name, errnoNumber: error.errno || Errno.EIO, kind: 'damaged' } })}\n` : `strata: ${message}\n`,
    );
    process.exitCode = 1;
  }
}

function linkJson(target: Buffer): { linkTarget: string; linkTargetBase64?: string } {
  const j = pathJson(target);
  return j.pathBase64 ? { linkTarget: j.path, linkTargetBase64: j.pathBase64 } : { linkTarget: j.path };
}
