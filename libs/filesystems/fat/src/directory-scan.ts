/**
 * A directory's raw entries to the names a vfat mount lists, following
 * fs/fat/dir.c (__fat_readdir, fat_parse_long, fat_search_long):
 *
 * - a deleted (0xe5) or unused (0x00) entry is skipped, and the scan goes
 *   on past it: the kernel does not treat 0x00 as the end of a directory;
 * - volume labels and entries with the volume bit are skipped;
 * - long-name slots are gathered from the one flagged 0x40 (at most 20)
 *   down to slot 1; a slot out of sequence or with another checksum starts
 *   over, an entry that is not a slot ends the attempt and is read afresh;
 * - the long name is kept only when the slots' checksum matches the short
 *   entry that follows them, else the short name is shown (an orphan);
 * - "." and ".." are recognised by their raw 8.3 name and never listed.
 *
 * Where the kernel would hand out a name no path can hold (empty, or with a
 * '/'), the short name is used instead, and an entry with no usable name at
 * all is left out.
 */
import {
  ATTR_DIR,
  ATTR_LFN,
  ATTR_VOLUME,
  DELETED,
  ENTRY_BYTES,
  isDotDotEntry,
  isDotEntry,
  isFree,
  parseShortEntry,
  shortNameChecksum,
  slotUnits,
  type ShortEntry,
} from './dir-entry';
import { shortNameUtf8 } from './short-name';
import { utf16ToUtf8 } from './utf16';

export interface DirRecord {
  /** Index of the short entry among the directory's 32-byte entries. */
  slot: number;
  /** The name listed. */
  name: Buffer;
  /** The 8.3 name as shown (lookup matches it too). */
  shortName: Buffer;
  entry: ShortEntry;
}

export interface ScanResult {
  records: DirRecord[];
  /** Short entries with the directory bit, "." and ".." included: the kernel's fat_subdirs. */
  subdirs: number;
  /** The first ".." entry's start cluster, undefined without one. */
  dotdotStart: number | undefined;
}

const MAX_UNI_CHARS = 255;
const SLASH = 0x2f;

type LongParse =
  | { status: 'invalid'; at: number }
  | { status: 'not-long'; at: number }
  | { status: 'eof' }
  | { status: 'ok'; at: number; units: number[] | undefined };

function attrAt(dir: Buffer, i: number): number {
  return dir[i * ENTRY_BYTES + 11] ?? 0;
}

/** fat_parse_long from entry `i` (a slot): where it leaves the scan and the name's units when they belong to the entry there. */
function parseLong(dir: Buffer, count: number, start: number, units: number[]): LongParse {
  let i = start;
  // Every restart consumes at least one entry, so this loop ends within `count` rounds.
  for (;;) {
    const off = i * ENTRY_BYTES;
    const id = dir[off] ?? 0;
    if (!(id & 0x40)) return { status: 'invalid', at: i };
    const slots = id & 0xbf;
    if (slots > 20 || slots === 0) return { status: 'invalid', at: i };
    const checksum = dir[off + 13] ?? 0;
    let slot = slots;
    let restart = false;
    let cur = off;
    for (;;) {
      slot--;
      const u = slotUnits(dir, cur);
      for (let k = 0; k < 13; k++) units[slot * 13 + k] = u[k] ?? 0;
      if ((dir[cur] ?? 0) & 0x40) units[slot * 13 + 13] = 0;
      i++;
      if (i >= count) return { status: 'eof' };
      if (slot === 0) break;
      cur = i * ENTRY_BYTES;
      if (attrAt(dir, i) !== ATTR_LFN) return { status: 'not-long', at: i };
      if (((dir[cur] ?? 0) & 0xbf) !== slot || (dir[cur + 13] ?? 0) !== checksum) {
        restart = true;
        break;
      }
    }
    if (restart) continue;
    const name = dir.subarray(i * ENTRY_BYTES, i * ENTRY_BYTES + 11);
    const attr = attrAt(dir, i);
    if (name[0] === DELETED) return { status: 'invalid', at: i };
    if (attr === ATTR_LFN) continue;
    if (isFree(name) || attr & ATTR_VOLUME) return { status: 'invalid', at: i };
    return { status: 'ok', at: i, units: shortNameChecksum(name) === checksum ? units.slice(0, slots * 13 + 1) : undefined };
  }
}

function usable(name: Buffer): boolean {
  return name.length > 0 && !name.includes(SLASH);
}

/** Scans `count` entries of a directory held in `dir`. */
export function scanDirectory(dir: Buffer, count: number, fat32: boolean): ScanResult {
  const records: DirRecord[] = [];
  let subdirs = 0;
  let dotdotStart: number | undefined;
  const n = Math.min(count, Math.floor(dir.length / ENTRY_BYTES));
  const units: number[] = new Array<number>(21 * 13 + 1).fill(0);

  // fat_subdirs and the ".." entry: every short entry, wherever it sits.
  for (let i = 0; i < n; i++) {
    const name = dir.subarray(i * ENTRY_BYTES, i * ENTRY_BYTES + 11);
    const attr = attrAt(dir, i);
    if (isFree(name) || attr & ATTR_VOLUME) continue;
    if (attr & ATTR_DIR) subdirs++;
    if (dotdotStart === undefined && isDotDotEntry(name)) dotdotStart = parseShortEntry(dir, i * ENTRY_BYTES, fat32).start;
  }

  let i = 0;
  while (i < n) {
    const name = dir.subarray(i * ENTRY_BYTES, i * ENTRY_BYTES + 11);
    const attr = attrAt(dir, i);
    if (name[0] === DELETED || (attr !== ATTR_LFN && (attr & ATTR_VOLUME || isFree(name)))) {
      i++;
      continue;
    }
    let longUnits: number[] | undefined;
    if (attr === ATTR_LFN) {
      const r = parseLong(dir, n, i, units);
      if (r.status === 'eof') break;
      if (r.status === 'invalid') {
        i = r.at + 1;
        continue;
      }
      if (r.status === 'not-long') {
        i = r.at;
        continue;
      }
      i = r.at;
      longUnits = r.units;
    }
    const raw = dir.subarray(i * ENTRY_BYTES, i * ENTRY_BYTES + 11);
    if (!isDotEntry(raw) && !isDotDotEntry(raw)) {
      const entry = parseShortEntry(dir, i * ENTRY_BYTES, fat32);
      const shortName = shortNameUtf8(entry.name, entry.lcase);
      const longName = longUnits ? utf16ToUtf8(longUnits, MAX_UNI_CHARS) : undefined;
      const listed = longName && usable(longName) ? longName : shortName;
      if (usable(listed)) records.push({ slot: i, name: listed, shortName, entry });
    }
    i++;
  }
  return { records, subdirs, dotdotStart };
}
