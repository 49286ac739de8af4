import { readPartitionTable, sliceSource, type ByteSource, type DiskImage } from '@strata/disk-image';
import { assembleVolumeGroups, logicalVolumeRefusal, readPhysicalVolume, type PvWithSource } from '@strata/lvm';

/** A stretch of a logical volume: where it lies on the disk, or undefined for a "zero" segment. */
export interface LvPiece {
  lvOffset: number;
  length: number;
  diskOffset: number | undefined;
}

/**
 * Where a logical volume's bytes lie on its disk, from the volume group's
 * segments: linear segments (and "zero" ones) over PVs that are the disk or
 * one of its partitions. Anything else (striped, thin, RAID, snapshots, a PV
 * on another disk) is a reason, not a guess: the caller leaves it unmapped.
 */
export async function logicalVolumeOnDisk(image: DiskImage, vgName: string, lvName: string): Promise<LvPiece[] | string> {
  const windows: { source: ByteSource; start: number }[] = [{ source: image, start: 0 }];
  const table = await readPartitionTable(image).catch(() => undefined);
  for (const p of table?.partitions ?? []) windows.push({ source: sliceSource(image, p.start, p.size), start: p.start });
  const pvs: PvWithSource[] = [];
  const starts = new Map<ByteSource, number>();
  for (const w of windows) {
    const pv = await readPhysicalVolume(w.source).catch(() => undefined);
    if (!pv) continue;
    pvs.push({ source: w.source, pv });
    starts.set(w.source, w.start);
  }
  const vg = assembleVolumeGroups(pvs).find((g) => g.name === vgName);
  if (!vg) return `volume group ${vgName} not found on the disk`;
  const refusal = logicalVolumeRefusal(vg, lvName);
  if (refusal) return refusal.message;
  const lv = vg.metadata.logicalVolumes.find((l) => l.name === lvName);
  if (!lv) return `logical volume ${vgName}/${lvName} not found`;
  const pieces: LvPiece[] = [];
  for (const seg of lv.segments) {
    const lvOffset = seg.startExtent * vg.extentSize;
    const length = seg.extentCount * vg.extentSize;
    if (seg.type === 'zero') {
      pieces.push({ lvOffset, length, diskOffset: undefined });
      continue;
    }
    if (seg.type !== 'striped' || seg.areas.length !== 1) return `a ${seg.type} segment with ${seg.areas.length} areas`;
    const area = seg.areas[0];
    const pv = vg.physicalVolumes.find((p) => p.key === area.name);
    const start = pv?.source ? starts.get(pv.source) : undefined;
    if (!pv || start === undefined) return `physical volume ${area.name} is not on this disk`;
    pieces.push({ lvOffset, length, diskOffset: start + pv.peStart + area.startExtent * vg.extentSize });
  }
  pieces.sort((a, b) => a.lvOffset - b.lvOffset);
  return pieces;
}
