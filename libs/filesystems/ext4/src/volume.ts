import { BlockReader } from './block-reader';
import type { FileContext } from './file-blocks';
import { GroupDescriptor } from './group-descriptors';
import { Superblock } from './superblock';
import type { Ext4Event } from './types';

/** What every per-structure module needs of an open filesystem. */
export interface Volume extends FileContext {
  sb: Superblock;
  reader: BlockReader;
  groups: readonly GroupDescriptor[];
  log: (event: Ext4Event) => void;
}

export function checksumEvent(vol: Volume, structure: string, reason: string, where: { ino?: number; block?: number }): void {
  vol.log({ event: 'ext4.checksum', structure, ...where, reason });
}
