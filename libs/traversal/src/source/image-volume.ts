import { type ByteSource, type DiskImage, type Partition, openImage, readPartitionTable, sliceSource } from '@strata/disk-image';
import { StrataError } from '@strata/errors';

/** Where a filesystem starts: the ext2/3/4 superblock magic 0xEF53 at byte 1024 + 56. */
const EXT_MAGIC_OFFSET = 1024 + 56;

export interface ImageVolume {
  image: DiskImage;
  /** The bytes of the chosen filesystem: the whole disk or one partition. */
  volume: ByteSource;
  /** The partition read, undefined for a disk that is itself a filesystem. */
  partition: number | undefined;
  /** Where the filesystem starts on the disk, in bytes. */
  offset: number;
}

async function holdsFilesystem(bytes: ByteSource): Promise<boolean> {
  if (bytes.size < EXT_MAGIC_OFFSET + 2) return false;
  const magic = await bytes.read(EXT_MAGIC_OFFSET, 2);
  return magic.readUInt16LE(0) === 0xef53;
}

function describe(parts: readonly Partition[]): string {
  if (parts.length === 0) return 'it has no partitions';
  return `its partitions: ${parts
    .map((p) => `#${p.number} (${Math.round(p.size / 1048576)} MiB${p.linuxFilesystem ? ', Linux filesystem' : ''}${p.name ? `, "${p.name}"` : ''})`)
    .join(', ')}`;
}

/**
 * Opens a disk image of the store and finds the filesystem a layer means:
 * partition `#N` as Linux numbers it; without one, the whole disk when it
 * holds a filesystem itself, else its only Linux filesystem partition.
 */
export async function openImageVolume(storeRoot: string, relative: string, format: 'raw' | 'qcow2', partition: number | undefined): Promise<ImageVolume> {
  const image = await openImage(relative, { storeRoot, format });
  try {
    if (partition === undefined && (await holdsFilesystem(image))) return { image, volume: image, partition: undefined, offset: 0 };
    const table = await readPartitionTable(image);
    const parts = table.partitions;
    let chosen: Partition | undefined;
    if (partition !== undefined) {
      chosen = parts.find((p) => p.number === partition);
      if (!chosen) throw StrataError.invalid(`disk image ${relative} has no partition #${partition}; ${describe(parts)}`);
    } else {
      const linux = parts.filter((p) => p.linuxFilesystem);
      if (linux.length !== 1) {
        throw StrataError.invalid(`disk image ${relative} holds no filesystem itself and ${linux.length === 0 ? 'no' : 'more than one'} Linux filesystem partition; name one with #N: ${describe(parts)}`);
      }
      chosen = linux[0];
    }
    return { image, volume: sliceSource(image, chosen.start, chosen.size), partition: chosen.number, offset: chosen.start };
  } catch (err) {
    await image.close();
    throw err;
  }
}
