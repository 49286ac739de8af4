export { Ext4 } from './ext4';
export type { ByteSource, Ext4Options, Ext4Event, Ext4Inode, Ext4InodeTable, Ext4DirEntry, Ext4FileType, Ext4StatFs, Ext4Xattr } from './types';
export type { JournalState } from './journal/journal';
export { crc32c } from './crc32c';
export { dirHash } from './dir-hash';
export { FileSource } from './file-source';
export { Ext4Filesystem, ext4Driver } from './ext4-filesystem';
