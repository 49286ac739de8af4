export { Ntfs } from './ntfs';
export type { NtfsOptions } from './ntfs';
export { ntfsDriver } from './driver';
export { decompressLznt1 } from './lznt1';
