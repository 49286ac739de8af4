import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { decodeEntry, encodeEntry, type IndexedEntry } from './cache-index';
import { closeFd, datasyncFd, openFd, truncateFd, writeFd } from './fd-calls';

/**
 * The records of kept files, appended as they are sealed: one line each,
 * `j1 <crc32 of the JSON, 8 hex digits> <JSON>`, the JSON an index line
 * (cache-index.ts: the record, the data file's name, when it was used).
 * A batch of records is one write and one fdatasync, where a file per
 * record cost an open, a write, an fsync, a close and a rename each (a
 * cold read of 27k small files spent most of the cache's cost there).
 *
 * A record is appended only after its data file is complete and synced,
 * and names a data file no other fill ever has (fresh names), so a line
 * can be missing (not yet appended, or torn by a crash: the file is
 * fetched again) but never describe other bytes. A torn or damaged line
 * fails its CRC and is skipped, the others are kept. A line whose data
 * file is gone (evicted since) is ignored at the next start. The journal
 * is emptied once a snapshot holds what it says (DiskCache.flush).
 */
export const JOURNAL_FILE = 'JOURNAL';
const LINE_TAG = 'j1';

/** Beyond this much only the start of the journal is read: the rest costs fetches, nothing else. */
const MAX_JOURNAL_BYTES = 64 * 1024 * 1024;

export function journalLine(e: IndexedEntry): string {
  const json = encodeEntry(e);
  return `${LINE_TAG} ${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

/** The entry of one journal line; undefined for a torn, damaged or foreign one. */
export function decodeJournalLine(line: string): IndexedEntry | undefined {
  // "j1 " + 8 hex digits + " " + JSON.
  if (line.length < 13 || !line.startsWith(`${LINE_TAG} `) || line[11] !== ' ') return undefined;
  const hex = line.slice(3, 11);
  if (!/^[0-9a-f]{8}$/.test(hex)) return undefined;
  const json = line.slice(12);
  if (crc32(json) !== parseInt(hex, 16)) return undefined;
  return decodeEntry(json);
}

export interface JournalContents {
  /** Entries by data file name (a name twice: the last line). */
  readonly entries: Map<string, IndexedEntry>;
  /** Lines read, good or not (what a snapshot would spare the next start). */
  readonly lines: number;
  /** Lines that were not records: torn by a crash, damaged, foreign. */
  readonly damaged: number;
}

/** What the journal in `dir` holds; empty when there is none or it cannot be read. */
export async function readJournal(dir: string): Promise<JournalContents> {
  const entries = new Map<string, IndexedEntry>();
  let text: string;
  try {
    const h = await fs.open(path.join(dir, JOURNAL_FILE), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = await h.stat();
      if (!st.isFile()) return { entries, lines: 0, damaged: 1 };
      const buf = Buffer.allocUnsafe(Math.min(st.size, MAX_JOURNAL_BYTES));
      let got = 0;
      // Bounded: each pass reads at least one byte or ends.
      while (got < buf.length) {
        const { bytesRead } = await h.read(buf, got, buf.length - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      text = buf.toString('utf8', 0, got);
    } finally {
      await h.close();
    }
  } catch {
    return { entries, lines: 0, damaged: 0 };
  }
  let lines = 0;
  let damaged = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    // A last line without its newline is one a crash cut short (or the read bound did): never a record.
    const complete = end >= 0;
    if (!complete) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (line === '') continue;
    lines++;
    const e = complete ? decodeJournalLine(line) : undefined;
    if (e === undefined) damaged++;
    else entries.set(e.name, e);
  }
  return { entries, lines, damaged };
}

/**
 * The journal file of a running agent, opened at its first append (a
 * plain descriptor: one fewer object per call than a FileHandle, and none
 * left to the garbage collector by an agent that never closes it). Appends
 * and truncations must not overlap (DiskCache runs them one at a time).
 */
export class RecordJournal {
  private fd?: number;
  /** Whether the file may end in a line cut short (a crash, a failed write): the next append starts a line of its own. */
  private mayBeTorn = true;
  /** The directory was made anew: the descriptor names a removed file, closed at the next append (never under one running). */
  private stale = false;

  constructor(private readonly dir: string) {}

  /** The next append or truncation opens the journal again: its directory was removed and made anew under the agent. */
  reopenLater(): void {
    this.stale = true;
  }

  private async dropStale(): Promise<void> {
    if (!this.stale) return;
    this.stale = false;
    await this.close();
  }

  /** Appends the records of synced data files, one write and one fdatasync: once it resolves they outlive a crash. */
  async append(entries: readonly IndexedEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.dropStale();
    const text = Buffer.from((this.mayBeTorn ? '\n' : '') + entries.map(journalLine).join(''));
    const fd = (this.fd ??= await openFd(path.join(this.dir, JOURNAL_FILE), constants.O_CREAT | constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW));
    this.mayBeTorn = true;
    // O_APPEND puts every write at the end; bounded: each pass writes at least one byte or throws.
    for (let done = 0; done < text.length; ) {
      const n = await writeFd(fd, text, done, text.length - done, null);
      if (n <= 0) throw new Error(`journal write wrote ${n} bytes`);
      done += n;
    }
    await datasyncFd(fd);
    this.mayBeTorn = false;
  }

  /** Empties the journal: a snapshot now holds every record it had (and a power cut cannot undo that one). */
  async truncate(): Promise<void> {
    await this.dropStale();
    const fd = this.fd;
    if (fd === undefined) {
      await fs.truncate(path.join(this.dir, JOURNAL_FILE), 0).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      });
    } else await truncateFd(fd, 0);
    this.mayBeTorn = false;
  }

  /** The file is closed; a later append opens it again (the directory may have been made anew). */
  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    this.mayBeTorn = true;
    if (fd !== undefined) await closeFd(fd);
  }
}
