/**
 * The file-type bits of st_mode (<sys/stat.h>). Every package that looks at
 * a mode asks here, so there is one spelling of "is this a directory".
 */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export type FileType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket' | 'unknown';

const TYPES: Record<number, FileType> = {
  [S_IFREG]: 'file',
  [S_IFDIR]: 'dir',
  [S_IFLNK]: 'symlink',
  [S_IFCHR]: 'char',
  [S_IFBLK]: 'block',
  [S_IFIFO]: 'fifo',
  [S_IFSOCK]: 'socket',
};

export function fileTypeOf(mode: number): FileType {
  return TYPES[mode & S_IFMT] ?? 'unknown';
}

export function isDirMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}

export function isRegMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFREG;
}

export function isLinkMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFLNK;
}

export function isDeviceMode(mode: number): boolean {
  const t = mode & S_IFMT;
  return t === S_IFCHR || t === S_IFBLK;
}
