import { type ByteSource, type DiskImage, type ImageFormat, openImage } from '@strata/disk-image';
import { StrataError } from '@strata/errors';
import { type DiskVolume, describeVolumes, inventoryDisk } from '../guest/disk-inventory';

/** A layer's image format as its source names it: one format, or 'image' to detect it by magic. */
export type ImageSourceFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhdx' | 'vhd' | 'vdi' | 'image';

/** The formats the container library reads, by the names sources use. */
export function containerFormat(format: ImageSourceFormat): ImageFormat | undefined {
  const known: readonly string[] = ['raw', 'qcow2', 'vmdk', 'vhdx', 'vhd', 'vdi'] satisfies ImageSourceFormat[];
  return format !== 'image' && known.includes(format) ? (format as ImageFormat) : undefined;
}

export interface ImageVolumeOptions {
  storeRoot: string;
  /** The image file, relative to the store root. */
  image: string;
  format: ImageSourceFormat;
  snapshot?: string;
  partition?: number;
  logicalVolume?: { vg: string; lv: string };
}

export interface ImageVolume {
  image: DiskImage;
  /** The bytes of the chosen filesystem: the whole disk, one partition or one logical volume. */
  volume: ByteSource;
  /** The partition read, undefined for a disk that is itself a filesystem or a logical volume. */
  partition: number | undefined;
  /** Names the volume inside the image in identities: "0" for the whole disk, "2" for a partition, "vg/lv". */
  label: string;
  /** The volume in words, for errors: "partition #2 of vm/x.raw". */
  describe: string;
  /** Where the filesystem starts on the disk, in bytes; meaningful only when `contiguous`. */
  offset: number;
  /** The volume is one run of the disk's bytes (block-level deltas map through `offset`). */
  contiguous: boolean;
}

/** Opens the image file (and its chain) a layer names, in the format its source says. */
export function openSourceImage(options: ImageVolumeOptions): Promise<DiskImage> {
  const format = containerFormat(options.format);
  return openImage(options.image, {
    storeRoot: options.storeRoot,
    ...(format === undefined ? {} : { format }),
    ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot }),
  });
}

function asImageVolume(image: DiskImage, v: DiskVolume): ImageVolume {
  return { image, volume: v.bytes, partition: v.partition, label: v.label, describe: v.describe, offset: v.offset, contiguous: v.contiguous };
}

/**
 * Opens a disk image of the store and finds the volume a layer means:
 * partition `#N` as Linux numbers it, logical volume `#VG/LV`; without one,
 * the whole disk when it holds a filesystem itself, else its only volume
 * holding one. A volume that holds no filesystem strata reads is refused
 * naming what it holds.
 */
export async function openImageVolume(options: ImageVolumeOptions): Promise<ImageVolume> {
  const relative = options.image;
  const image = await openSourceImage(options);
  try {
    const inventory = await inventoryDisk(image, relative);
    const volumes = inventory.volumes;
    let chosen: DiskVolume | undefined;
    if (options.logicalVolume) {
      const { vg, lv } = options.logicalVolume;
      chosen = volumes.find((v) => v.logicalVolume?.vg === vg && v.logicalVolume.lv === lv);
      if (!chosen) throw StrataError.invalid(`disk image ${relative} has no logical volume #${vg}/${lv}; ${describeVolumes(volumes)}`);
    } else if (options.partition !== undefined) {
      chosen = volumes.find((v) => v.partition === options.partition);
      if (!chosen) throw StrataError.invalid(`disk image ${relative} has no partition #${options.partition}; its volumes: ${describeVolumes(volumes)}`);
    } else {
      const readable = volumes.filter((v) => v.filesystem);
      if (readable.length !== 1) {
        const warnings = inventory.warnings.length > 0 ? ` (${inventory.warnings.join('; ')})` : '';
        throw StrataError.invalid(
          `disk image ${relative} ${readable.length === 0 ? 'holds no filesystem strata reads' : 'holds more than one filesystem'}; name one with #N or #VG/LV: ${describeVolumes(volumes)}${warnings}`,
        );
      }
      chosen = readable[0];
    }
    if (!chosen.filesystem) {
      const hint = chosen.probe?.kind === 'lvm2-pv' || chosen.probe?.kind === 'swap' || chosen.probe?.kind === 'luks' ? '' : ', which strata cannot read';
      throw StrataError.invalid(`${chosen.describe} holds ${chosen.holds}${chosen.probe?.kind === 'swap' ? ': no files to project' : hint}`);
    }
    return asImageVolume(image, chosen);
  } catch (err) {
    await image.close();
    throw err;
  }
}
