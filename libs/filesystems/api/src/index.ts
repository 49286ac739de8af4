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
export { crc32c } from './crc32c';
export { readExactly } from './read-exactly';
