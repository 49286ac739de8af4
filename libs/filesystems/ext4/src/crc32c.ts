// CRC-32C as every reader uses it (the raw register update, chained): one implementation, in the filesystem seam.
export { crc32c, crc32cU32, crc32cU64, crc32cZeros } from '@strata/filesystem';
