import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import type { ImageFormat } from './format/detect';

/** Identity of one file an image reads (cache keys are built from these). */
export interface ImageFile {
  /** Real path (symlinks resolved). */
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  /** The format of the image this file is, or belongs to (a VMDK extent is 'vmdk'). */
  format: ImageFormat;
  /** 'image' for the images of the chain; 'extent' for a data file a VMDK descriptor names. */
  role: 'image' | 'extent';
}

/** Counters shared by every file of one image chain. */
export interface ReadCounters {
  /** Positional reads issued to image files (all files of the chain). */
  fileReads: number;
  fileBytesRead: number;
}

function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/** The real path of the store root; every image path is checked against it. */
export async function realStoreRoot(storeRoot: string): Promise<string> {
  try {
    return await fs.realpath(storeRoot);
  } catch (err) {
    throw StrataError.from(err, `image store root ${storeRoot}`);
  }
}

/** Positional reads of an image file: a StoreFile, or one seen through an in-memory overlay (a replayed VHDX log). */
export interface FileReader {
  readonly label: string;
  readonly size: number;
  /** Fills target[targetOffset, +length) from the file at `position`; EIO when the file ends first. */
  readInto(target: Buffer, targetOffset: number, length: number, position: number): Promise<void>;
  read(position: number, length: number): Promise<Buffer>;
}

/**
 * An open, regular image file inside the store, read by position only.
 * `label` is how errors name it (the store-relative path the user gave).
 */
export class StoreFile implements FileReader {
  private constructor(
    private readonly handle: fs.FileHandle,
    readonly realPath: string,
    readonly size: number,
    readonly dev: number,
    readonly ino: number,
    readonly mtimeMs: number,
    readonly label: string,
    private readonly counters: ReadCounters,
  ) {}

  /**
   * Opens `lexicalPath` (absolute, not yet resolved) after checking that its
   * real path is inside `realRoot`. The check is repeated on the opened
   * descriptor so that a symlink swapped in between cannot lead outside.
   */
  static async open(
    realRoot: string,
    lexicalPath: string,
    label: string,
    describe: string,
    counters: ReadCounters,
  ): Promise<StoreFile> {
    let real: string;
    try {
      real = await fs.realpath(lexicalPath);
    } catch (err) {
      throw StrataError.from(err, describe);
    }
    if (!isInside(realRoot, real)) {
      throw new StrataError(Errno.EACCES, `${describe} leads outside the store (it resolves to ${real})`);
    }
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw StrataError.from(err, `open ${describe}`);
    }
    try {
      const opened = await fs.readlink(`/proc/self/fd/${handle.fd}`).catch(() => real);
      if (!isInside(realRoot, opened)) {
        throw new StrataError(Errno.EACCES, `${describe} leads outside the store (it was replaced while being opened)`);
      }
      const st = await handle.stat();
      if (!st.isFile()) {
        throw new StrataError(Errno.EINVAL, `${describe} is not a regular file`);
      }
      return new StoreFile(handle, opened, st.size, st.dev, st.ino, st.mtimeMs, label, counters);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw StrataError.from(err, `open ${describe}`);
    }
  }

  identity(format: ImageFormat, role: 'image' | 'extent' = 'image'): ImageFile {
    return { path: this.realPath, dev: this.dev, ino: this.ino, size: this.size, mtimeMs: this.mtimeMs, format, role };
  }

  /** Fills target[targetOffset, +length) from the file at `position`; EIO when the file ends first. */
  async readInto(target: Buffer, targetOffset: number, length: number, position: number): Promise<void> {
    if (position < 0 || position + length > this.size) {
      throw new StrataError(
        Errno.EIO,
        `image ${this.label}: read of ${length} bytes at file offset ${position} is past the end of the file (${this.size} bytes)`,
      );
    }
    let done = 0;
    while (done < length) {
      let bytesRead: number;
      try {
        this.counters.fileReads++;
        ({ bytesRead } = await this.handle.read(target, targetOffset + done, length - done, position + done));
      } catch (err) {
        throw StrataError.from(err, `read image ${this.label} at offset ${position + done}`);
      }
      if (bytesRead === 0) {
        throw new StrataError(Errno.EIO, `image ${this.label}: file ended at offset ${position + done} (it shrank?)`);
      }
      this.counters.fileBytesRead += bytesRead;
      done += bytesRead;
    }
  }

  async read(position: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    await this.readInto(buf, 0, length, position);
    return buf;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}
