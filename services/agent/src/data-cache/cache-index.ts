import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { RECORD_VERSION, recordOf, TEMP_SUFFIX, type EntryRecord } from './entry-record';

/**
 * A snapshot of the records of the kept files, one file, written in LRU
 * order so that the next start keeps the most recently used; once it is
 * on disk the journal (record-journal.ts) is emptied. A record never
 * changes once written (every fill has a fresh name), so a line can be
 * missing or name a data file gone since, never describe other bytes; the
 * load takes a line only for a data file that is there. A damaged line or
 * a snapshot of another version costs those files a fetch, nothing else
 * (their size and sum are checked before reuse in any case).
 */
export const INDEX_FILE = 'INDEX';
const INDEX_HEADER = 'strata-data-cache-index 1';

/** Beyond this the snapshot is not read (about 200,000 entries): the record files are. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export interface IndexedEntry {
  readonly name: string;
  readonly record: EntryRecord;
  /** When it was last used; the snapshot is written in LRU order, least recent first. */
  readonly usedMs: number;
}

/** The snapshot's entries by name; empty when there is none or it is not one of ours. */
export async function readIndex(dir: string): Promise<Map<string, IndexedEntry>> {
  const found = new Map<string, IndexedEntry>();
  let text: string;
  try {
    const h = await fs.open(path.join(dir, INDEX_FILE), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = await h.stat();
      if (!st.isFile() || st.size > MAX_INDEX_BYTES) return found;
      text = (await h.readFile()).toString('utf8');
    } finally {
      await h.close();
    }
  } catch {
    return found;
  }
  const lines = text.split('\n');
  if (lines[0] !== INDEX_HEADER) return found;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') continue;
    const e = decodeEntry(line);
    if (e !== undefined) found.set(e.name, e);
  }
  return found;
}

/** One entry as a line of JSON: its record, with its file's name and when it was last used (also the journal's lines). */
export function encodeEntry(e: IndexedEntry): string {
  const r = e.record;
  const a = r.attrs;
  // Built by hand (the numbers are safe integers, the name hex: only the id needs escaping), in the key order an index line always had;
  // JSON.stringify of the nested object cost some 9 µs per record.
  return (
    `{"n":${JSON.stringify(e.name)},"u":${Math.round(e.usedMs)},"v":${RECORD_VERSION},"id":${JSON.stringify(r.id)},"size":${r.size},` +
    `"attrs":{"ino":${a.ino},"size":${a.size},"mtimeSec":${a.mtimeSec},"mtimeNsec":${a.mtimeNsec},"ctimeSec":${a.ctimeSec},"ctimeNsec":${a.ctimeNsec}},` +
    `"chunkSize":${r.chunkSize},"sum":${r.sum}}`
  );
}

/** The entry a line of JSON names; undefined when it is not one (damaged, foreign, out of bounds). */
export function decodeEntry(line: string): IndexedEntry | undefined {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return undefined;
  }
  const record = recordOf(o);
  if (typeof record === 'string') return undefined;
  const { n, u } = o as Record<string, unknown>;
  if (typeof n !== 'string' || !/^[0-9a-f]{1,64}$/.test(n) || typeof u !== 'number' || !Number.isFinite(u)) return undefined;
  return { name: n, record, usedMs: u };
}

/**
 * Replaces the snapshot (temporary file, fsync, rename, directory fsync): a
 * crash leaves the old one or the new one. `entries` least recently used first; past the
 * size a load reads, the least recent are left out.
 */
export async function writeIndex(dir: string, entries: readonly IndexedEntry[]): Promise<void> {
  const lines: string[] = [];
  let bytes = INDEX_HEADER.length + 1;
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    const line = encodeEntry(e);
    bytes += Buffer.byteLength(line) + 1;
    if (bytes > MAX_INDEX_BYTES) break;
    lines.push(line);
  }
  const parts = [INDEX_HEADER, ...lines.reverse()];
  const file = path.join(dir, INDEX_FILE);
  const tmp = file + TEMP_SUFFIX;
  const h = await fs.open(tmp, constants.O_CREAT | constants.O_TRUNC | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  try {
    await h.writeFile(parts.join('\n') + '\n');
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.rename(tmp, file);
  // The journal is emptied after this: the rename must outlive a power cut first.
  await syncDir(dir);
}

/** fsync of a directory: what was renamed or created in it is on disk. */
export async function syncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
