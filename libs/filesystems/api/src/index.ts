export type {
  ByteSource,
  FileExtent,
  FileType,
  Filesystem,
  FilesystemDriver,
  FilesystemOptions,
  FilesystemType,
  FsDirEntry,
  FsEvent,
  FsNode,
  FsStatFs,
  FsXattr,
} from './filesystem';
export { crc32c, crc32cU32, crc32cU64, crc32cZeros } from './crc32c';
export { readExactly } from './read-exactly';
