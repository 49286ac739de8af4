import type { FsEvent } from '@strata/filesystem';
import type { MetadataReader } from './metadata-reader';
import type { Superblock } from './superblock';

/** What every structure reader needs: the geometry, the block reader and the event log. */
export interface Volume {
  readonly sb: Superblock;
  readonly reader: MetadataReader;
  readonly log: (event: FsEvent) => void;
}
