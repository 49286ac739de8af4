export { Btrfs } from './btrfs';
export type { BtrfsOptions, SubvolumeInfo } from './btrfs';
export { btrfsDriver } from './driver';
export { encodeHandle, decodeHandle } from './handle';
export { nameHash } from './name-hash';
export { lzo1xDecompress } from './compression/lzo1x';
