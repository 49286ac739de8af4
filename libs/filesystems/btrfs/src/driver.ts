import type { ByteSource, FilesystemDriver, FilesystemType } from '@strata/filesystem';
import { Btrfs } from './btrfs';
import { SUPER_INFO_OFFSET, SUPER_INFO_SIZE } from './constants';
import { hasMagic } from './superblock';

/** The prober's view of this reader: detect by the primary superblock's magic only. */
export const btrfsDriver: FilesystemDriver = {
  type: 'btrfs',
  async detect(source: ByteSource): Promise<FilesystemType | undefined> {
    try {
      if (source.size < SUPER_INFO_OFFSET + SUPER_INFO_SIZE) return undefined;
      return hasMagic(await source.read(SUPER_INFO_OFFSET, 72)) ? 'btrfs' : undefined;
    } catch {
      return undefined;
    }
  },
  open: (source, options) => Btrfs.open(source, options),
};
