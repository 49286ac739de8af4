import type { ByteSource, FilesystemDriver, FilesystemOptions, FilesystemType } from '@strata/filesystem';
import { XFS_SB_MAGIC } from './superblock';
import { Xfs } from './xfs';

/** The prober's view of this reader: the superblock magic at byte 0. */
export const xfsDriver: FilesystemDriver = {
  type: 'xfs',
  async detect(source: ByteSource): Promise<FilesystemType | undefined> {
    try {
      if (source.size < 512) return undefined;
      const head = await source.read(0, 4);
      return head.length === 4 && head.readUInt32BE(0) === XFS_SB_MAGIC ? 'xfs' : undefined;
    } catch {
      return undefined;
    }
  },
  open: (source: ByteSource, options?: FilesystemOptions) => Xfs.open(source, options),
};
