import type { ByteSource, FilesystemDriver, FilesystemType } from '@strata/filesystem';
import { hasNtfsMagic } from './boot-sector';
import { Ntfs, NtfsOptions } from './ntfs';

export const ntfsDriver: FilesystemDriver = {
  type: 'ntfs',
  async detect(source: ByteSource): Promise<FilesystemType | undefined> {
    try {
      if (source.size < 512) return undefined;
      return hasNtfsMagic(await source.read(0, 512)) ? 'ntfs' : undefined;
    } catch {
      return undefined;
    }
  },
  open(source: ByteSource, options?: NtfsOptions) {
    return Ntfs.open(source, options);
  },
};
