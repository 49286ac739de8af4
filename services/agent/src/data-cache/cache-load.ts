import { constants, promises as fs, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { INDEX_FILE, readIndex } from './cache-index';
import { DATA_SUFFIX, RECORD_SUFFIX, readRecord, type EntryRecord } from './entry-record';
import { JOURNAL_FILE, readJournal } from './record-journal';

/**
 * The file naming the directory's layout. A directory without it (an
 * older agent's, which numbered its files and emptied them at start) or
 * with another one is emptied: reading a layout we do not know could only
 * serve the wrong bytes.
 */
export const FORMAT_FILE = 'FORMAT';
export const FORMAT = 'strata-data-cache 1\n';

/** A cache file a previous agent left complete, kept for this one. */
export interface LoadedEntry {
  /** The file's name without its suffix. */
  readonly name: string;
  readonly record: EntryRecord;
  /** When it was last filled or reused: the LRU order across restarts. */
  readonly usedMs: number;
}

export interface LoadResult {
  /** Kept entries, least recently used first, within the budget. */
  readonly entries: LoadedEntry[];
  /** Entries (or stray files) removed: incomplete, corrupt, over the budget, or no longer wanted. */
  readonly dropped: number;
  /** Records read from their own files (an older agent's layout, which the snapshot lacked). */
  readonly recordsRead: number;
  /** Lines in the journal (a snapshot would spare the next start them), and how many were torn or damaged. */
  readonly journalLines: number;
  readonly journalDamaged: number;
  /** Why the whole directory was emptied (an unknown layout), when it was. */
  readonly reset?: string;
}

/** Whether an entry of this size may be kept at all (the cache's own rule for a single file). */
export type SizeRule = (size: number) => boolean;

/** Records read at once while loading. */
const LOAD_PARALLEL = 16;

/**
 * Makes `dir` (0700) and reads what a previous agent left in it: each data
 * file with a record of this version (from the snapshot, else its own
 * file, then with its size checked) is kept, most recently used first
 * until `maxBytes`; everything else is removed. Never
 * throws for what it finds, only when the directory itself cannot be made
 * or listed.
 */
export async function loadCacheDir(dir: string, maxBytes: number, takes: SizeRule): Promise<LoadResult> {
  // Something else where the directory should be (the path is the agent's own): it goes.
  const st = await fs.lstat(dir).catch(() => undefined);
  const notDir = st !== undefined && !st.isDirectory() && !st.isSymbolicLink();
  if (notDir) await fs.rm(dir, { force: true });
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const reset = notDir ? 'it was not a directory' : await checkFormat(dir);
  if (reset !== undefined) {
    await emptyDir(dir);
    await writeFormat(dir);
    return { entries: [], dropped: 0, recordsRead: 0, journalLines: 0, journalDamaged: 0, reset };
  }
  const names = (await fs.readdir(dir)).filter((n) => n !== FORMAT_FILE && n !== INDEX_FILE && n !== JOURNAL_FILE);
  // What was sealed since the snapshot is in the journal; a name in both is one record.
  const index = await readIndex(dir);
  const journal = await readJournal(dir);
  for (const [name, e] of journal.entries) {
    const old = index.get(name);
    if (old === undefined || old.usedMs < e.usedMs) index.set(name, e);
  }
  const data = new Set(names.filter((n) => n.endsWith(DATA_SUFFIX)).map((n) => n.slice(0, -DATA_SUFFIX.length)));
  const records = names.filter((n) => n.endsWith(RECORD_SUFFIX)).map((n) => n.slice(0, -RECORD_SUFFIX.length));
  const stray = names.filter((n) => !n.endsWith(DATA_SUFFIX) && !n.endsWith(RECORD_SUFFIX));

  const found: LoadedEntry[] = [];
  let dropped = 0;
  // A file that cannot be removed is only left behind (and tried again at the next start): never a failed start.
  const drop = async (name: string): Promise<void> => {
    dropped++;
    await removeEntry(dir, name).catch(() => undefined);
  };
  // What the snapshot or the journal has needs no read: its size and sum are checked before the file's first reuse.
  const taken = new Set<string>();
  for (const name of data) {
    const indexed = index.get(name);
    if (indexed === undefined) continue;
    found.push(indexed);
    taken.add(name);
  }
  for (const name of taken) data.delete(name);
  // Records of an older agent's layout, one file each, that nothing above took (without their data file they go).
  const unindexed = records.filter((name) => !taken.has(name));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < unindexed.length) {
      const name = unindexed[next++];
      const entry = data.has(name) ? await readEntry(dir, name) : undefined;
      data.delete(name);
      if (entry === undefined) await drop(name);
      else found.push(entry);
    }
  };
  await Promise.all(Array.from({ length: LOAD_PARALLEL }, worker));
  // Data without a record: a fill the previous agent never finished (or one it never meant to keep).
  for (const name of data) await drop(name);
  for (const name of stray) {
    dropped++;
    await fs.rm(path.join(dir, name), { recursive: true, force: true }).catch(() => undefined);
  }

  // Newest first within the budget; one id twice (a refill whose old files a crash left) keeps the newest.
  found.sort((a, b) => b.usedMs - a.usedMs);
  const kept: LoadedEntry[] = [];
  const ids = new Set<string>();
  let bytes = 0;
  for (const e of found) {
    const size = e.record.size;
    if (ids.has(e.record.id) || !takes(size) || bytes + size > maxBytes) {
      await drop(e.name);
      continue;
    }
    ids.add(e.record.id);
    bytes += size;
    kept.push(e);
  }
  return { entries: kept.reverse(), dropped, recordsRead: unindexed.length, journalLines: journal.lines, journalDamaged: journal.damaged };
}

/** The entry `name` if its record reads and its data file is a regular file of the recorded size. */
async function readEntry(dir: string, name: string): Promise<LoadedEntry | undefined> {
  const record = await readRecord(path.join(dir, name + RECORD_SUFFIX));
  if (typeof record === 'string') return undefined;
  try {
    const st = await fs.lstat(path.join(dir, name + DATA_SUFFIX));
    if (!st.isFile() || st.size !== record.size) return undefined;
    return { name, record, usedMs: st.mtimeMs };
  } catch {
    return undefined;
  }
}

/** Why the directory's layout is not ours; undefined when it is (or it is a new, empty directory). */
async function checkFormat(dir: string): Promise<string | undefined> {
  let text: string;
  try {
    const h = await fs.open(path.join(dir, FORMAT_FILE), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const buf = Buffer.alloc(256);
      const { bytesRead } = await h.read(buf, 0, buf.length, 0);
      text = buf.toString('utf8', 0, bytesRead);
    } finally {
      await h.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return `its ${FORMAT_FILE} file is unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    if ((await fs.readdir(dir)).length === 0) {
      await writeFormat(dir);
      return undefined;
    }
    return `it has no ${FORMAT_FILE} file (an older agent's)`;
  }
  return text === FORMAT ? undefined : `its layout is ${JSON.stringify(text.trim().slice(0, 64))}, not ${JSON.stringify(FORMAT.trim())}`;
}

/** writeFormat for a fill that found its directory gone (fills create their files without a threadpool round trip). */
export function writeFormatSync(dir: string): void {
  const tmp = path.join(dir, `${FORMAT_FILE}.tmp`);
  writeFileSync(tmp, FORMAT, { mode: 0o600 });
  renameSync(tmp, path.join(dir, FORMAT_FILE));
}

export async function writeFormat(dir: string): Promise<void> {
  const tmp = path.join(dir, `${FORMAT_FILE}.tmp`);
  await fs.writeFile(tmp, FORMAT, { mode: 0o600 });
  await fs.rename(tmp, path.join(dir, FORMAT_FILE));
}

/** Everything in `dir`, not the directory (an operator may have made it, with its own owner and mode). */
async function emptyDir(dir: string): Promise<void> {
  for (const n of await fs.readdir(dir)) await fs.rm(path.join(dir, n), { recursive: true, force: true });
}

/** The record first: a crash between the two leaves a data file without one, which the next start removes. */
export async function removeEntry(dir: string, name: string): Promise<void> {
  await fs.rm(path.join(dir, name + RECORD_SUFFIX), { force: true });
  await fs.rm(path.join(dir, name + DATA_SUFFIX), { force: true });
}
