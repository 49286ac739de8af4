import { constants, promises as fs } from 'node:fs';
import type { FileAttrs } from './chain-identity';

/**
 * What a kept cache file is: the chain's identity and the file's path in
 * it, what the file was when it was filled, and the bytes' sum. Records are
 * lines of the journal and the snapshot now (record-journal.ts,
 * cache-index.ts); agents before issue 28 wrote each to a file of its own
 * beside the data (`<name>.meta` beside `<name>.data`, through a temporary
 * name renamed into place), which a start still reads (readRecord), and
 * writeRecord still writes for tests of that layout.
 */
export interface EntryRecord {
  /** The cache id: chain identity, NUL, the path in the layer (latin1 of its bytes). */
  readonly id: string;
  readonly size: number;
  readonly attrs: FileAttrs;
  /** The chunk size the sum was taken over. */
  readonly chunkSize: number;
  /** ChunkSums.total() of the bytes. */
  readonly sum: number;
}

/** Bumped on any change of what a record holds or means: records of another version are not read. */
export const RECORD_VERSION = 1;

export const DATA_SUFFIX = '.data';
export const RECORD_SUFFIX = '.meta';
export const TEMP_SUFFIX = '.tmp';

/** Bounds on what a record may say (a path is at most 4 KiB; anything larger is not ours). */
const MAX_RECORD_BYTES = 64 * 1024;
const SMALL_RECORD_BYTES = 1024;
const MAX_ID_CHARS = 16 * 1024;
const MIN_CHUNK = 4096;
const MAX_CHUNK = 1 << 30;

export function encodeRecord(r: EntryRecord): string {
  return JSON.stringify({ v: RECORD_VERSION, ...r });
}

/** The record in `text`, or why it is not one (corrupt, foreign, out of bounds). */
export function decodeRecord(text: string): EntryRecord | string {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  return recordOf(o);
}

/** The record `o` (parsed JSON) is, or why it is not one. */
export function recordOf(o: unknown): EntryRecord | string {
  if (typeof o !== 'object' || o === null) return 'not an object';
  const r = o as Record<string, unknown>;
  if (r.v !== RECORD_VERSION) return `version ${String(r.v)}`;
  if (typeof r.id !== 'string' || r.id.length === 0 || r.id.length > MAX_ID_CHARS || !r.id.includes('\0')) return 'bad id';
  if (!isCount(r.size) || r.size < 1) return 'bad size';
  if (!isCount(r.chunkSize) || r.chunkSize < MIN_CHUNK || r.chunkSize > MAX_CHUNK) return 'bad chunk size';
  if (!isCount(r.sum) || r.sum > 0xffffffff) return 'bad sum';
  const a = r.attrs;
  if (typeof a !== 'object' || a === null) return 'no attributes';
  const at = a as Record<string, unknown>;
  for (const k of ['ino', 'size', 'mtimeSec', 'mtimeNsec', 'ctimeSec', 'ctimeNsec'] as const) {
    if (typeof at[k] !== 'number' || !Number.isSafeInteger(at[k])) return `bad attribute ${k}`;
  }
  if (at.size !== r.size) return 'sizes differ';
  const attrs: FileAttrs = {
    ino: at.ino as number,
    size: at.size,
    mtimeSec: at.mtimeSec as number,
    mtimeNsec: at.mtimeNsec as number,
    ctimeSec: at.ctimeSec as number,
    ctimeNsec: at.ctimeNsec as number,
  };
  return { id: r.id, size: r.size, attrs, chunkSize: r.chunkSize, sum: r.sum };
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The record of `file`; a string saying why not when it is unreadable or not a record. */
export async function readRecord(file: string): Promise<EntryRecord | string> {
  let h: fs.FileHandle;
  try {
    h = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'unreadable';
  }
  try {
    // A record is a few hundred bytes: one small read, more only for a long path, never more than the bound.
    let buf = Buffer.allocUnsafe(SMALL_RECORD_BYTES);
    let length = 0;
    for (;;) {
      const { bytesRead } = await h.read(buf, length, buf.length - length, length);
      length += bytesRead;
      if (bytesRead === 0 || length < buf.length) break;
      if (buf.length > MAX_RECORD_BYTES) return 'too large';
      const grown = Buffer.allocUnsafe(Math.min(buf.length * 4, MAX_RECORD_BYTES + 1));
      buf.copy(grown, 0, 0, length);
      buf = grown;
    }
    return decodeRecord(buf.toString('utf8', 0, length));
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'unreadable';
  } finally {
    await h.close();
  }
}

/**
 * Writes the record of a complete, synced data file: temporary file,
 * fsync, rename. The directory is not synced: a rename lost with a power
 * cut costs one cache file (no record: removed at the next start), while a
 * directory sync per filled file would cost every cold read of many small
 * files a journal commit each.
 */
export async function writeRecord(file: string, r: EntryRecord): Promise<void> {
  const tmp = `${file}${TEMP_SUFFIX}`;
  const h = await fs.open(tmp, constants.O_CREAT | constants.O_TRUNC | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  try {
    await h.writeFile(encodeRecord(r));
    await h.sync();
  } catch (err) {
    await h.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await h.close();
  await fs.rename(tmp, file).catch(async (err: unknown) => {
    await fs.rm(tmp, { force: true });
    throw err;
  });
}
