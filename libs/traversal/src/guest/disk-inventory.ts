import { type ByteSource, type DiskImage, type Partition, readPartitionTable, sliceSource } from '@strata/disk-image';
import { StrataError, errorMessage } from '@strata/errors';
import type { FilesystemType } from '@strata/filesystem';
import { assembleVolumeGroups, openLogicalVolume, readPhysicalVolume, type PvWithSource } from '@strata/lvm';
import { describeProbe, probe, type Probe } from '@strata/probe';
import { detectFilesystem } from '../source/filesystem-drivers';

/** One place on a disk a filesystem can live: the whole disk, a partition, or a logical volume. */
export interface DiskVolume {
  /** "0" for the whole disk, "2" for partition 2, "vg/lv" for a logical volume: what `#` names in a source. */
  label: string;
  /** In words, for messages: "partition #2 of vm/x.raw". */
  describe: string;
  partition?: number;
  logicalVolume?: { vg: string; lv: string };
  /** Where its bytes start on the disk; meaningful only when `contiguous` (a partition, the disk). */
  offset: number;
  /** Its bytes are one run of the disk (a logical volume's extents may not be). */
  contiguous: boolean;
  size: number;
  bytes: ByteSource;
  /** GPT partition name. */
  partLabel?: string;
  /** PARTUUID as blkid prints it. */
  partUuid?: string;
  /** GPT partition type GUID or MBR type byte. */
  partType?: string | number;
  /** What its signatures say, as blkid would. */
  probe?: Probe;
  /** The filesystem strata reads on it, if any. */
  filesystem?: FilesystemType;
  /** What it holds, in words ("ext4 (label "boot")", "Linux swap", "an LVM2 physical volume (VG rhel): ..."). */
  holds: string;
}

export interface DiskInventory {
  scheme: 'gpt' | 'mbr' | 'none';
  volumes: DiskVolume[];
  warnings: string[];
}

type Place = Omit<DiskVolume, 'probe' | 'filesystem' | 'holds'>;

async function examine(place: Place): Promise<DiskVolume> {
  const found = await probe(place.bytes).catch((err: unknown) => ({ kind: 'unknown', type: '', readable: false, detail: errorMessage(err) }) as Probe);
  const fs = found.readable ? await detectFilesystem(place.bytes) : undefined;
  return {
    ...place,
    probe: found,
    ...(fs ? { filesystem: fs.type } : {}),
    holds: describeProbe(found),
  };
}

/**
 * Every volume of a disk image with what it holds: the disk itself when it
 * carries a filesystem or a PV (no partition table), else each partition,
 * and the logical volumes of every LVM2 volume group whose PVs are on it.
 */
export async function inventoryDisk(image: DiskImage, relative: string): Promise<DiskInventory> {
  const whole = await examine({ label: '0', describe: `disk image ${relative}`, offset: 0, contiguous: true, size: image.size, bytes: image });
  const warnings: string[] = [];
  let scheme: DiskInventory['scheme'] = 'none';
  let volumes: DiskVolume[];
  if (whole.probe?.kind === 'filesystem' || whole.probe?.kind === 'lvm2-pv' || whole.probe?.kind === 'luks' || whole.probe?.kind === 'swap') {
    volumes = [whole];
  } else {
    const table = await readPartitionTable(image);
    scheme = table.scheme;
    warnings.push(...table.warnings);
    volumes = [];
    for (const p of table.partitions) volumes.push(await examine(partitionPlace(image, relative, p)));
    if (table.partitions.length === 0) volumes.push(whole);
  }
  volumes.push(...(await logicalVolumes(volumes, relative, warnings)));
  return { scheme, volumes, warnings };
}

function partitionPlace(image: DiskImage, relative: string, p: Partition): Place {
  return {
    label: String(p.number),
    describe: `partition #${p.number} of ${relative}`,
    partition: p.number,
    offset: p.start,
    contiguous: true,
    size: p.size,
    bytes: sliceSource(image, p.start, p.size),
    ...(p.name ? { partLabel: p.name } : {}),
    partUuid: p.uuid,
    partType: p.type,
  };
}

/** The LVs of the volume groups whose PVs are among `volumes`; each PV's `holds` then names its VG and an LV to ask for. */
async function logicalVolumes(volumes: DiskVolume[], relative: string, warnings: string[]): Promise<DiskVolume[]> {
  const pvs: (PvWithSource & { volume: DiskVolume })[] = [];
  for (const v of volumes) {
    if (v.probe?.kind !== 'lvm2-pv') continue;
    try {
      const pv = await readPhysicalVolume(v.bytes);
      if (pv) pvs.push({ source: v.bytes, pv, volume: v });
    } catch (err) {
      warnings.push(`${v.describe}: LVM2 label unreadable: ${errorMessage(err)}`);
    }
  }
  if (pvs.length === 0) return [];
  const out: DiskVolume[] = [];
  let groups;
  try {
    groups = assembleVolumeGroups(pvs);
  } catch (err) {
    warnings.push(`LVM2 metadata of ${relative} unreadable: ${errorMessage(err)}`);
    return [];
  }
  for (const vg of groups) {
    warnings.push(...vg.warnings.map((w) => `VG ${vg.name}: ${w}`));
    const visible = vg.logicalVolumes.filter((lv) => lv.visible);
    const example = visible.find((lv) => lv.name === 'root') ?? visible[0];
    for (const p of pvs) {
      if (vg.physicalVolumes.some((x) => x.source === p.source)) {
        p.volume.holds = `an LVM2 physical volume (VG ${vg.name})${example ? `: name a logical volume, e.g. #${vg.name}/${example.name}` : ''}`;
      }
    }
    for (const lv of visible) {
      const place = { label: `${vg.name}/${lv.name}`, describe: `logical volume ${vg.name}/${lv.name} of ${relative}`, logicalVolume: { vg: vg.name, lv: lv.name }, offset: 0, contiguous: false, size: lv.size };
      try {
        out.push(await examine({ ...place, bytes: openLogicalVolume(vg, lv.name) }));
      } catch (err) {
        // Listed all the same (inspect shows it); reading it fails with why.
        const why = StrataError.from(err);
        out.push({ ...place, bytes: { size: 0, read: () => Promise.reject(why) }, holds: `a logical volume strata cannot read: ${why.message}` });
      }
    }
  }
  return out;
}

/** The volumes in words for an error: "#1 (1 MiB: nothing recognisable), #2 (511 MiB, "root": ext4)". */
export function describeVolumes(volumes: readonly DiskVolume[]): string {
  if (volumes.length === 0) return 'it has no partitions';
  return volumes
    .map((v) => `${v.label === '0' ? 'the disk' : `#${v.label}`} (${Math.round(v.size / 1048576)} MiB${v.partLabel ? `, "${v.partLabel}"` : ''}: ${v.holds})`)
    .join(', ');
}
