import type { Command } from 'commander';
import type { ExtentMap, StrataClient, StoreFileIdentity } from '@strata/client';
import { parseLayerRef, type LayerRef } from '@strata/layers';
import { CliError } from './command-context';
import type { CommandContext } from './command-context';
import { Errno } from '@strata/errors';

/** Answers asked for one file at most: a 64 MiB window each, so 16 TiB of a file (and a bound on a resolver that never says eof). */
const MAX_CALLS = 262_144;

/** One run as the command prints it, store files named by path. */
interface Row {
  offset: number;
  length: number;
  kind: 'data' | 'hole' | 'unmapped';
  file?: string;
  fileOffset?: number;
  reason?: string;
}

/** The whole range asked for, answer after answer: rows, and every store file named (by path). */
async function mapAll(c: StrataClient, ref: LayerRef, p: string, offset: number, length: number): Promise<{ first: ExtentMap; rows: Row[]; files: Map<string, StoreFileIdentity>; eof: boolean }> {
  const rows: Row[] = [];
  const files = new Map<string, StoreFileIdentity>();
  const end = length === 0 ? Number.MAX_SAFE_INTEGER : offset + length;
  let pos = offset;
  let first: ExtentMap | undefined;
  let eof = false;
  for (let calls = 0; calls < MAX_CALLS && pos < end && !eof; calls++) {
    const m = await c.extentMap(ref, p, pos, length === 0 ? 0 : end - pos);
    first ??= m;
    for (const e of m.extents) {
      if (e.kind === 'data') {
        const f = m.files[e.file];
        files.set(f.path, f);
        rows.push({ offset: e.offset, length: e.length, kind: 'data', file: f.path, fileOffset: e.fileOffset });
      } else rows.push(e.kind === 'hole' ? { offset: e.offset, length: e.length, kind: 'hole' } : { offset: e.offset, length: e.length, kind: 'unmapped', reason: e.reason });
    }
    eof = m.eof;
    if (m.length === 0) break;
    pos += m.length;
  }
  if (!first) throw new CliError(Errno.EINVAL, 'nothing to map');
  return { first, rows, files, eof };
}

function rowText(r: Row): string {
  const where = r.kind === 'data' ? `${r.file ?? ''} @ ${r.fileOffset ?? 0}` : r.kind === 'hole' ? 'hole (zeros)' : `unmapped: ${r.reason ?? ''} (served by the resolver)`;
  return `${String(r.offset).padStart(14)} ${String(r.length).padStart(12)}  ${where}`;
}

function fileText(f: StoreFileIdentity): string {
  return `  ${f.path}  dev ${f.dev} ino ${f.ino} size ${f.size} mtime ${f.mtimeSec}.${String(f.mtimeNsec).padStart(9, '0')}`;
}

/**
 * `strata layer extents LAYER PATH`: where a sealed layer's file lies in
 * the image store, run by run (a store file and offset, a hole, or a range
 * only the resolver can serve), and the identity of every store file named.
 */
export function addLayerExtentsCommand(layer: Command, ctx: CommandContext): void {
  layer
    .command('extents')
    .description("where a file of a sealed layer lies in the image store: runs of (store file, offset), holes, and ranges only the resolver serves (compressed, encrypted)")
    .argument('<layer>', 'id or name')
    .argument('<path>', 'a regular file inside the layer')
    .option('--offset <bytes>', 'from this offset of the file', '0')
    .option('--length <bytes>', 'this many bytes (default: to the end of the file)', '0')
    .action((ref: string, p: string, o: { offset: string; length: string }, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const [offset, length] = [o.offset, o.length].map((v, i) => {
          const n = Number(v);
          if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n)) throw new CliError(Errno.EINVAL, `--${i === 0 ? 'offset' : 'length'} ${v}: not a byte count`);
          return n;
        });
        const { first, rows, files, eof } = await mapAll(c, parseLayerRef(ref), p, offset, length);
        const size = first.attr?.size ?? 0;
        if (g.json) {
          await ctx.json({ layer: ref, path: p, storeId: first.storeId, size, eof, files: [...files.values()], extents: rows });
          return;
        }
        const lines = [`${p}  size ${size}  store ${first.storeId}`, `${'OFFSET'.padStart(14)} ${'LENGTH'.padStart(12)}  WHERE`, ...rows.map(rowText)];
        if (files.size > 0) lines.push('store files:', ...[...files.values()].map(fileText));
        await ctx.out(`${lines.join('\n')}\n`);
      }),
    );
}
