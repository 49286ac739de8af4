import type { Command } from 'commander';
import type { LayerCheckResult, StrataClient } from '@strata/client';
import { Errno } from '@strata/errors';
import { parseLayerRef, type Layer } from '@strata/layers';
import { CliError, type CommandContext } from './command-context';

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
  return lines.join('\n');
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
    .action((ref: string | undefined, _o: unknown, cmd: Command) =>
      ctx.withClient(cmd, async (c: StrataClient, g) => {
        const targets: Pick<Layer, 'layerId'>[] = ref === undefined ? await c.listLayers() : [{ layerId: (await c.getLayer(parseLayerRef(ref))).layer.layerId }];
        const results = await inOrder(targets, CONCURRENCY, (l) => c.checkLayer({ id: l.layerId }));
        const ok = results.every((r) => r.ok);
        if (g.json) await ctx.json({ ok, layers: results });
        else await ctx.out(results.length === 0 ? 'no layers\n' : `${results.map(checkText).join('\n')}\n`);
        if (!ok) {
          const bad = results.filter((r) => !r.ok);
          throw new CliError(Errno.EIO, `${bad.length} of ${results.length} layer${results.length === 1 ? '' : 's'} failed the check: ${bad.map(layerName).join(', ')}`);
        }
      }),
    );
}
