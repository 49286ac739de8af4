import type { FileType } from '@strata/filesystem';

/** One name in a directory, as the directory records it. */
export interface DirEntry {
  name: Buffer;
  ino: number;
  type: FileType;
}

const FTYPES: FileType[] = ['unknown', 'file', 'dir', 'char', 'block', 'fifo', 'socket', 'symlink'];

/** XFS_DIR3_FT_* to a FileType; whiteouts and unknown values read as 'unknown'. */
export function fileTypeOf(ftype: number): FileType {
  return FTYPES[ftype] ?? 'unknown';
}

export function isDotOrDotDot(name: Buffer): boolean {
  return (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
}

/** A 64-bit inode number from a directory, which must still fit a safe integer. */
export function entryIno(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
}
