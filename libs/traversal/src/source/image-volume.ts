import { type ByteSource, type DiskImage, type ImageFormat, type Partition, openImage, readPartitionTable, sliceSource } from '@strata/disk-image';
import { StrataError } from '@strata/errors';
import { detectFilesystem } from './filesystem-drivers';

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
  /** Where the filesystem starts on the disk, in bytes (a logical volume: where its first extent lies). */
  offset: number;
}

function describeParts(parts: readonly Partition[], holds: ReadonlyMap<number, string>): string {
  if (parts.length === 0) return 'it has no partitions';
  return `its partitions: ${parts
    .map((p) => `#${p.number} (${Math.round(p.size / 1048576)} MiB${p.name ? `, "${p.name}"` : ''}: ${holds.get(p.number) ?? 'unknown'})`)
    .join(', ')}`;
}

/** What a stretch of the disk holds, in a few words. */
async function holdsOf(bytes: ByteSource): Promise<string> {
  const fs = await detectFilesystem(bytes);
  return fs ? fs.type : 'no filesystem strata reads';
}

/**
 * Opens a disk image of the store and finds the volume a layer means:
 * partition `#N` as Linux numbers it; without one, the whole disk when it
 * holds a filesystem itself, else its only partition holding one.
 */
export async function openImageVolume(options: ImageVolumeOptions): Promise<ImageVolume> {
  const relative = options.image;
  const image = await openImage(relative, {
    storeRoot: options.storeRoot,
    ...(options.format === 'image' ? {} : { format: containerFormat(options.format) }),
    ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot }),
  });
  try {
    const whole = (): ImageVolume => ({ image, volume: image, partition: undefined, label: '0', describe: `disk image ${relative}`, offset: 0 });
    if (options.logicalVolume) {
      throw StrataError.unsupported(`disk image ${relative}: logical volume #${options.logicalVolume.vg}/${options.logicalVolume.lv}: LVM2 volumes are not read yet`);
    }
    if (options.partition === undefined && (await detectFilesystem(image))) return whole();
    const table = await readPartitionTable(image);
    const parts = table.partitions;
    const slice = (p: Partition): ImageVolume => ({
      image,
      volume: sliceSource(image, p.start, p.size),
      partition: p.number,
      label: String(p.number),
      describe: `partition #${p.number} of ${relative}`,
      offset: p.start,
    });
    const holds = new Map<number, string>();
    for (const p of parts) holds.set(p.number, await holdsOf(sliceSource(image, p.start, p.size)));
    if (options.partition !== undefined) {
      const chosen = parts.find((p) => p.number === options.partition);
      if (!chosen) throw StrataError.invalid(`disk image ${relative} has no partition #${options.partition}; ${describeParts(parts, holds)}`);
      return slice(chosen);
    }
    const readable: Partition[] = [];
    for (const p of parts) if (await detectFilesystem(sliceSource(image, p.start, p.size))) readable.push(p);
    if (readable.length !== 1) {
      throw StrataError.invalid(
        `disk image ${relative} holds no filesystem itself and ${readable.length === 0 ? 'no' : 'more than one'} partition with a filesystem strata reads; name one with #N: ${describeParts(parts, holds)}`,
      );
    }
    return slice(readable[0]);
  } catch (err) {
    await image.close();
    throw err;
  }
}
