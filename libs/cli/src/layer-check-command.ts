import type { Command } from 'commander';
import type { LayerCheckResult, StrataClient } from '@strata/client';
import { Errno, errnoName } from '@strata/errors';
import { parseLayerRef, type Layer } from '@strata/layers';
import { CliError, type CommandContext } from './command-context';
import { pathJson, pathText } from './format';

/** Layers checked at once when every layer is: each check opens images, so a few, not all. */
const CONCURRENCY = 4;

function layerName(r: Pick<LayerCheckResult, 'layerId' | 'name'>): string {
  return `layer ${r.layerId}${r.name ? ` (${r.name})` : ''}`;
}

/** One block per layer: its verdict, then each file and problem that is not fine (every file with --verbose). */
function checkText(r: LayerCheckResult): string {
  const lines = [`${layerName(r)}  ${r.source}  ${r.ok ? 'ok' : 'FAILED'}`];
  for (const f of r.files) if (f.state !== 'ok') lines.push(`  ${f.role}  ${f.file}  ${f.state}: ${f.detail}`);
  for (const p of r.problems) lines.push(`  problem: ${p}`);
  if (r.deep) {
    for (const d of r.deep.damaged) {
      const err = d.error ? `${errnoName(d.error.errno)}: ${d.error.message}` : 'unreadable';
      lines.push(`  damaged  ${pathText(d.path)}${d.ino ? ` (inode ${d.ino})` : ''}  ${d.what}  ${err}`);
    }
    const more = r.deep.damagedCount - r.deep.damaged.length;
    lines.push(`  deep: ${r.deep.objectsChecked} objects read, ${r.deep.damagedCount} damaged${more > 0 ? ` (${more} not listed)` : ''}`);
  }
  return lines.join('\n');
}

/** A result as JSON: damaged paths spelled as every path of the CLI's JSON is (utf-8, or base64 beside it). */
function checkJson(r: LayerCheckResult): Record<string, unknown> {
  if (!r.deep) return { ...r };
  return { ...r, deep: { ...r.deep, damaged: r.deep.damaged.map((d) => ({ ...pathJson(d.path), ino: d.ino, what: d.what, error: d.error ?? null })) } };
}

/** Runs `fn` over `items` with at most `n` at once, results in order. */
async function inOrder<T, R>(items: readonly T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/**
 * `strata layer check [LAYER]`: one layer, or every layer the caller may
 * read, checked by the resolver (files present, readable, unchanged;
 * headers valid). Exit 1 when any is not fine, after printing all of them.
 * Built as steps on the resolver side so that a deeper check (issue 24:
 * --deep, a walk of every file) is one more step and one more option here.
 */
export function addLayerCheckCommand(layer: Command, ctx: CommandContext): void {
  layer
    .command('check')
    .description("whether a layer's files are still what it was made from: each file of its chain present, readable, unchanged; image headers valid (every layer you may read without LAYER)")
    .argument('[layer]', 'id or name (default: every layer)')
    .option('--deep', 'also read the whole tree (every entry, listing, link, xattr list and file content) and list each damaged object with its errno, without stopping: what a forensic examiner runs first; takes as long as reading the disk')
    .action((ref: string | undefined, o: { deep?: boolean }, cmd: Command) =>
      ctx.withClient(cmd, async (c: StrataClient, g) => {
        const targets: Pick<Layer, 'layerId'>[] = ref === undefined ? await c.listLayers() : [{ layerId: (await c.getLayer(parseLayerRef(ref))).layer.layerId }];
        const results = await inOrder(targets, CONCURRENCY, (l) => c.checkLayer({ id: l.layerId }, { deep: o.deep === true }));
        const ok = results.every((r) => r.ok && (r.deep?.damagedCount ?? 0) === 0);
        if (g.json) await ctx.json({ ok, layers: results.map(checkJson) });
        else await ctx.out(results.length === 0 ? 'no layers\n' : `${results.map(checkText).join('\n')}\n`);
        if (!ok) {
          const bad = results.filter((r) => !r.ok || (r.deep?.damagedCount ?? 0) > 0);
          throw new CliError(Errno.EIO, `${bad.length} of ${results.length} layer${results.length === 1 ? '' : 's'} failed the check: ${bad.map(layerName).join(', ')}`);
        }
      }),
    );
}
