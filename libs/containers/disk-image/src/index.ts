export { sliceSource, bufferSource, MAX_READ_LENGTH } from './byte-source';
export type { ByteSource } from './byte-source';
export { openImage, DEFAULT_METADATA_CACHE_BYTES, MAX_CHAIN_LENGTH } from './open-image';
export type { DiskImage, DiskImageStats, ImageFile, ImageFormat, OpenImageOptions } from './open-image';
export { readPartitionTable } from './partitions/partition-table';
export type { Partition, PartitionTable } from './partitions/partition';
export type { GuestRange } from './layer';
