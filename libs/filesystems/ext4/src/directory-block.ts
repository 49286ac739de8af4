import { corrupt } from './corruption';
import { crc32c } from './crc32c';
import type { Ext4FileType } from './types';

export const DIRENT_TAIL_SIZE = 12;
const TAIL_FILE_TYPE = 0xde;

const FILE_TYPES: Ext4FileType[] = ['unknown', 'file', 'dir', 'char', 'block', 'fifo', 'socket', 'symlink'];

export interface RawDirEntry {
  ino: number;
  name: Buffer;
  type: Ext4FileType;
}

export interface DirParseOptions {
  hasFileType: boolean;
  inodesCount: number;
  /** What to name in errors. */
  what: string;
  /**
   * Given: an entry failing the checks ends the block instead of failing it
   * (the kernel's readdir skips the rest of that block); the entries before
   * it are returned and the error is handed here.
   */
  onBadEntry?: (err: Error) => void;
}

/** ext4's rec_len for a name of this length (8-byte header, 4-byte aligned). */
export function dirRecLen(nameLen: number): number {
  return (8 + nameLen + 3) & ~3;
}

/** Whether the block ends in a metadata_csum dirent tail (a fake entry with file type 0xDE). */
export function hasDirentTail(block: Buffer): boolean {
  const t = block.length - DIRENT_TAIL_SIZE;
  return (
    t >= 0 &&
    block.readUInt32LE(t) === 0 &&
    block.readUInt16LE(t + 4) === DIRENT_TAIL_SIZE &&
    block.readUInt8(t + 6) === 0 &&
    block.readUInt8(t + 7) === TAIL_FILE_TYPE
  );
}

/** Verifies a leaf block's checksum tail; returns the reason when it fails. */
export function verifyDirentTail(block: Buffer, csumSeed: number): string | undefined {
  if (!hasDirentTail(block)) return 'no checksum tail in a directory leaf block';
  const t = block.length - DIRENT_TAIL_SIZE;
  const want = block.readUInt32LE(t + 8);
  const got = crc32c(csumSeed, block, 0, t);
  return want === got ? undefined : `checksum mismatch (stored 0x${want.toString(16)}, computed 0x${got.toString(16)})`;
}

function rawRecLen(v: number, blockSize: number): number {
  // 64 KiB blocks cannot store a rec_len of 65536; ext4 writes 65535 or 0 instead.
  if (blockSize >= 65536 && (v === 65535 || v === 0)) return blockSize;
  return v;
}

/**
 * Parses the linear entries in buf[start, end), validating each as the
 * kernel's ext4_check_dir_entry does. `blockSize` only matters for the
 * 64 KiB rec_len encoding. Entries with inode 0 (free space) are skipped.
 */
export function parseDirEntries(buf: Buffer, start: number, end: number, blockSize: number, opts: DirParseOptions): RawDirEntry[] {
  const out: RawDirEntry[] = [];
  if (!opts.onBadEntry) return parseInto(out, buf, start, end, blockSize, opts);
  try {
    return parseInto(out, buf, start, end, blockSize, opts);
  } catch (err) {
    if (!(err instanceof Error)) throw err;
    opts.onBadEntry(err);
    return out;
  }
}

function parseInto(out: RawDirEntry[], buf: Buffer, start: number, end: number, blockSize: number, opts: DirParseOptions): RawDirEntry[] {
  let off = start;
  while (off < end) {
    if (end - off < 12) throw corrupt(opts.what, `directory entry at offset ${off} is truncated`);
    const ino = buf.readUInt32LE(off);
    const recLen = rawRecLen(buf.readUInt16LE(off + 4), blockSize);
    const nameLen = opts.hasFileType ? buf.readUInt8(off + 6) : buf.readUInt16LE(off + 6);
    if (recLen < 12) throw corrupt(opts.what, `rec_len ${recLen} at offset ${off} is smaller than minimal`);
    if (recLen % 4 !== 0) throw corrupt(opts.what, `rec_len ${recLen} at offset ${off} is not a multiple of 4`);
    if (recLen < dirRecLen(nameLen)) throw corrupt(opts.what, `rec_len ${recLen} at offset ${off} is too small for name_len ${nameLen}`);
    if (off + recLen > end) throw corrupt(opts.what, `directory entry at offset ${off} runs past the end of the block`);
    if (ino > opts.inodesCount) throw corrupt(opts.what, `inode ${ino} at offset ${off} is out of range`);
    if (ino !== 0 && nameLen > 0) {
      const ft = opts.hasFileType ? buf.readUInt8(off + 7) : 0;
      out.push({ ino, name: Buffer.from(buf.subarray(off + 8, off + 8 + nameLen)), type: FILE_TYPES[ft] ?? 'unknown' });
    }
    off += recLen;
  }
  return out;
}
