import type { VolumeGroup } from './volume-group';

function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(2)} ${units[i]}`;
}

/**
 * A VG for people (errors, `strata` output): its name, extent size, PVs, and
 * each LV with its size, segment types and whether strata reads it.
 */
export function describeVolumeGroup(vg: VolumeGroup): string {
  const lines = [`VG ${vg.name} (uuid ${vg.uuid}, seqno ${vg.seqno}), extent size ${size(vg.extentSize)}`];
  lines.push(`  PVs: ${vg.physicalVolumes.map((p) => `${p.key} ${p.uuid}${p.missing ? ' (missing)' : ''}`).join(', ') || 'none'}`);
  for (const lv of vg.logicalVolumes) {
    const what = `${size(lv.size)}, ${lv.segmentTypes.join('+') || 'no segments'}${lv.visible ? '' : ', hidden'}${lv.notes.length ? `, ${lv.notes.join(', ')}` : ''}`;
    lines.push(`  LV ${lv.name}: ${what}: ${lv.readable ? 'readable' : `not readable (${lv.reason})`}`);
  }
  for (const w of vg.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}
