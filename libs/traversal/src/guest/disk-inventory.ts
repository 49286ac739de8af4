import { type ByteSource, type DiskImage, type Partition, readPartitionTable, sliceSource } from '@strata/disk-image';
import type { FilesystemType } from '@strata/filesystem';
import { detectFilesystem } from '../source/filesystem-drivers';

/** One place on a disk a filesystem can live: the whole disk, a partition, or a logical volume. */
export interface DiskVolume {
  /** "0" for the whole disk, "2" for partition 2, "vg/lv" for a logical volume: what `#` names in a source. */
  label: string;
  /** In words, for messages: "partition #2 of vm/x.raw". */
  describe: string;
  partition?: number;
  logicalVolume?: { vg: string; lv: string };
  offset: number;
  size: number;
  bytes: ByteSource;
  /** GPT partition name. */
  partLabel?: string;
  /** GPT partition type GUID or MBR type byte. */
  partType?: string | number;
  /** The filesystem strata reads on it, if any. */
  filesystem?: FilesystemType;
  /** What it holds, in words ("ext4", "no filesystem strata reads"). */
  holds: string;
}

export interface DiskInventory {
  scheme: 'gpt' | 'mbr' | 'none';
  volumes: DiskVolume[];
  warnings: string[];
}

async function describeHolding(bytes: ByteSource): Promise<{ filesystem?: FilesystemType; holds: string }> {
  const found = await detectFilesystem(bytes);
  return found ? { filesystem: found.type, holds: found.type } : { holds: 'no filesystem strata reads' };
}

/**
 * Every volume of a disk image with what it holds: the disk itself when it
 * carries a filesystem (no partition table), else each partition.
 */
export async function inventoryDisk(image: DiskImage, relative: string): Promise<DiskInventory> {
  const whole = await describeHolding(image);
  if (whole.filesystem) {
    return {
      scheme: 'none',
      warnings: [],
      volumes: [{ label: '0', describe: `disk image ${relative}`, offset: 0, size: image.size, bytes: image, ...whole }],
    };
  }
  const table = await readPartitionTable(image);
  const volumes: DiskVolume[] = [];
  for (const p of table.partitions) volumes.push(await partitionVolume(image, relative, p));
  return { scheme: table.scheme, volumes, warnings: table.warnings };
}

async function partitionVolume(image: DiskImage, relative: string, p: Partition): Promise<DiskVolume> {
  const bytes = sliceSource(image, p.start, p.size);
  return {
    label: String(p.number),
    describe: `partition #${p.number} of ${relative}`,
    partition: p.number,
    offset: p.start,
    size: p.size,
    bytes,
    ...(p.name ? { partLabel: p.name } : {}),
    partType: p.type,
    ...(await describeHolding(bytes)),
  };
}

/** The volumes in words for an error: "#1 (1 MiB: no filesystem strata reads), #2 (511 MiB, "root": ext4)". */
export function describeVolumes(volumes: readonly DiskVolume[]): string {
  if (volumes.length === 0) return 'it has no partitions';
  return volumes
    .map((v) => `${v.label === '0' ? 'the disk' : `#${v.label}`} (${Math.round(v.size / 1048576)} MiB${v.partLabel ? `, "${v.partLabel}"` : ''}: ${v.holds})`)
    .join(', ');
}
