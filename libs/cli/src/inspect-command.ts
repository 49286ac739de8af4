import type { Command } from 'commander';
import type { InspectImageResponse } from '@strata/protocol';
import { parseLayerRef } from '@strata/layers';
import type { CommandContext } from './command-context';

function mib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(1)} GiB` : `${Math.round(bytes / (1 << 20))} MiB`;
}

/** The report as a person reads it: the OS first, then each volume, the mounts, and what could not be read. */
export function inspectText(r: InspectImageResponse): string {
  const lines: string[] = [];
  const os = r.os;
  const osLine = os?.type === 'unknown' || !os ? 'no operating system found' : [os.product || os.distribution, os.version && !os.product ? os.version : ''].filter(Boolean).join(' ') || os.type;
  lines.push(`image:     ${r.imageFormat}${r.imageSubformat ? ` (${r.imageSubformat})` : ''}, ${mib(r.virtualSize)}, partitions: ${r.partitionScheme}`);
  for (const s of r.snapshots) lines.push(`snapshot:  ${s.id} "${s.name}" ${new Date(s.dateMs).toISOString()} (${mib(s.virtualSize)}${s.vmStateSize > 0 ? `, VM state ${mib(s.vmStateSize)}` : ''}) — qcow2:PATH@${s.name}`);
  lines.push(`os:        ${osLine}${os && os.type !== 'unknown' ? ` (${os.type}${os.distribution ? `, ${os.distribution}` : ''}${os.version ? ` ${os.version}` : ''})` : ''}`);
  if (os?.hostname) lines.push(`hostname:  ${os.hostname}`);
  lines.push('volumes:');
  for (const v of r.volumes) {
    const what = [v.filesystemType || v.holds, v.label ? `label "${v.label}"` : '', v.uuid ? `uuid ${v.uuid}` : '', v.partitionLabel ? `partlabel "${v.partitionLabel}"` : '']
      .filter(Boolean)
      .join(', ');
    lines.push(`  ${(v.volume === '' ? 'disk' : `#${v.volume}`).padEnd(14)} ${mib(v.size).padStart(9)}  ${what}${v.mountpoint ? `  → ${v.mountpoint}` : ''}`);
  }
  if (r.mounts.length > 0) {
    lines.push('mounts (the guest tree a layer without #N shows):');
    for (const m of r.mounts) lines.push(`  ${m.path.padEnd(14)} ${m.volume === '' ? 'disk' : `#${m.volume}`} ${m.filesystemType}${m.filesystemPath !== '/' ? ` ${m.filesystemPath}` : ''}`);
  }
  for (const a of r.absent) lines.push(`absent:    ${a.path} (${a.spec}): ${a.reason}`);
  for (const p of r.problems) lines.push(`problem:   ${p}`);
  for (const w of r.warnings) lines.push(`warning:   ${w}`);
  return `${lines.join('\n')}\n`;
}

/** `strata inspect LAYER|SOURCE`: what is on a disk image, without mounting it (like virt-inspector). */
export function addInspectCommand(program: Command, ctx: CommandContext): void {
  const { out, json } = ctx;
  program
    .command('inspect')
    .description("look inside a disk image without mounting it: the guest's OS, its filesystems and where it mounts them")
    .argument('<layer|source>', 'a layer id or name, or an image source such as qcow2:vm/rhel.qcow2')
    .action((target: string, _o: unknown, cmd: Command) =>
      ctx.withClient(cmd, async (c, g) => {
        const r = await c.inspectImage(/^[a-z0-9]+:/.test(target) ? { source: target } : { layer: parseLayerRef(target) });
        if (g.json) await json(r);
        else await out(inspectText(r));
      }),
    );
}
