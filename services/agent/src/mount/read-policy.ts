import { LRUCache } from 'lru-cache';
import { isDirMode, isRegMode } from '@strata/posix';
import type { DirEntry } from '@strata/protocol';
import { CHUNK_SIZE } from './chunk-cache';
import { sortedIndexOf } from './listing-cache';
import { baseName, childKey, parentKey } from './tree-path';

/**
 * A read that does not continue the previous one (random access) fetches
 * the pages it covers, as the kernel reads a disk for a random reader: a
 * 64 KiB block per 4 KiB read made the resolver read and send 16 times
 * what was asked (issue 28: cold random 4 KiB reads of a 1 GiB file).
 */
export const PAGE_SIZE = 4096;
/** Sequential reads fetch up to this many chunks ahead. */
export const MAX_READAHEAD_CHUNKS = 8;
/** Files opened one after another in a directory: the next ones' first chunks are fetched ahead. */
export const SIBLING_PREFETCH_FILES = 32;
export const SIBLING_PREFETCH_BYTES = 16 << 20;
/**
 * Once the files ahead run out in a directory, the prefetch goes on into
 * the next directories of its parent (the order find, tar and cp -r go
 * in): at most this many, looked for among this many entries after it.
 */
export const NEXT_DIRECTORIES = 2;
const NEXT_SCAN = 64;

/** Sequential readers move whole chunks; a jump (random access) fetches the pages it reads, not 1 MiB for 4 KiB. */
export type PieceUnit = 'chunk' | 'pages';

/** The aligned chunk of a file holding `pos`: its index, where it starts and how long it is. */
export function chunkAt(pos: number): { index: number; start: number; size: number } {
  const index = Math.floor(pos / CHUNK_SIZE);
  return { index, start: index * CHUNK_SIZE, size: CHUNK_SIZE };
}

/** The whole pages [pos, end) lies in: where they start and how long they are. */
export function pagesOf(pos: number, end: number): { start: number; size: number } {
  const start = pos - (pos % PAGE_SIZE);
  return { start, size: Math.max(PAGE_SIZE, Math.ceil((end - start) / PAGE_SIZE) * PAGE_SIZE) };
}

/** How to serve one read, decided before any byte is fetched. */
export interface ReadPlan {
  unit: PieceUnit;
  pos: number;
  /** Where the read stops: the known end of a sealed file; LIVE files end wherever the resolver says. */
  end: number;
  size: number;
  /** Consecutive sequential reads of this file, this one included (0 for a jump). */
  streak: number;
  /** Paths of the files after this one in its directory whose first chunk to fetch now. */
  siblings: string[];
  /** Their sizes, by the same index (the directory's listing has them): each is asked for up to its end. */
  siblingSizes: number[];
}

/** How a file is being read, to spot sequential readers (kept per path: the agent sees no opens). */
interface ReadState {
  /** Where the previous read ended. */
  lastEnd: number;
  streak: number;
}

/** Per directory: the listing index of the file read last from its start, and how far sibling prefetch has gone. */
interface DirState {
  last: number;
  prefetched: number;
}

const NO_SIBLINGS: { siblings: string[]; siblingSizes: number[] } = { siblings: [], siblingSizes: [] };

/**
 * The read-pattern policy of one mount: from the reads it is told about,
 * which pieces serve them (chunks or pages) and what to fetch ahead
 * (the next chunks of a sequential reader, the next files of a directory
 * read in order). Pure bookkeeping: it fetches nothing itself.
 */
export class ReadPolicy {
  private readonly reading = new LRUCache<string, ReadState>({ max: 4096 });
  private readonly opened = new LRUCache<string, DirState>({ max: 256 });

  /** `listing` gives a directory's cached entries, if any (sibling prefetch needs them). */
  constructor(
    private readonly live: boolean,
    private readonly listing: (dir: string) => readonly DirEntry[] | undefined,
  ) {}

  /** A read of [pos, pos+len) of the file at `key`, `size` bytes long by its attributes. */
  plan(key: string, pos: number, len: number, size: number): ReadPlan {
    const { siblings, siblingSizes } = pos === 0 && !this.live ? this.siblingsAfter(key) : NO_SIBLINGS;
    let st = this.reading.get(key);
    if (!st) {
      // A sealed file read whole by its first read leaves nothing to follow: any later read is at 0
      // again, sequential either way, with no chunk left to fetch ahead. Not remembering it keeps a
      // tree read of small files from churning the table (a set and an eviction per file).
      if (pos === 0 && !this.live && len >= size) return { unit: 'chunk', pos, end: size, size, streak: 1, siblings, siblingSizes };
      st = { lastEnd: -1, streak: 0 };
      this.reading.set(key, st);
    }
    // The kernel sends readahead requests concurrently, a little out of order:
    // a read near where the last ones ended still counts as sequential.
    const sequential = pos === 0 || Math.abs(pos - st.lastEnd) <= 2 * CHUNK_SIZE;
    st.streak = sequential ? st.streak + 1 : 0;
    st.lastEnd = sequential ? Math.max(st.lastEnd, pos + len) : pos + len;
    const end = this.live ? pos + len : Math.min(pos + len, size);
    return { unit: sequential ? 'chunk' : 'pages', pos, end, size, streak: st.streak, siblings, siblingSizes };
  }

  /** Sequential readers get the next chunks fetched before they ask; the window grows with the streak. */
  ahead(plan: ReadPlan, copied: number): number[] {
    if (plan.unit !== 'chunk' || copied === 0) return [];
    const last = Math.floor((plan.size - 1) / CHUNK_SIZE);
    const next = Math.ceil((plan.pos + copied) / CHUNK_SIZE);
    const window = Math.min(MAX_READAHEAD_CHUNKS, plan.streak);
    const out: number[] = [];
    for (let i = next; i < next + window && (this.live || i <= last); i++) out.push(i);
    return out;
  }

  /**
   * Programs that read a tree (cp -r, tar, find | xargs cat, a scanner) read
   * the files of a directory in listing order, one at a time: every file
   * would cost a full round trip. When two files in a directory are read
   * one after the other, the first chunks of the next files are fetched at once, so the
   * round trips overlap. Bounded in files and bytes per step.
   */
  private siblingsAfter(key: string): { siblings: string[]; siblingSizes: number[] } {
    const parent = parentKey(key);
    const entries = this.listing(parent);
    if (!entries) return NO_SIBLINGS;
    const index = sortedIndexOf(entries, baseName(key));
    if (index < 0) return NO_SIBLINGS;
    const seen = this.opened.get(parent);
    if (!seen) {
      this.opened.set(parent, { last: index, prefetched: index });
      return NO_SIBLINGS;
    }
    const last = seen.last;
    seen.last = index;
    if (index <= last || index - last > 16) return NO_SIBLINGS;
    let i = Math.max(index, seen.prefetched) + 1;
    const out: string[] = [];
    const sizes: number[] = [];
    let bytes = 0;
    for (; i < entries.length && out.length < SIBLING_PREFETCH_FILES && bytes < SIBLING_PREFETCH_BYTES; i++) {
      const e = entries[i];
      if (!e.attr || !isRegMode(e.attr.mode) || e.attr.size === 0) continue;
      out.push(childKey(parent, e.name));
      sizes.push(e.attr.size);
      bytes += Math.min(e.attr.size, CHUNK_SIZE);
    }
    seen.prefetched = i - 1;
    // The rest of this directory is fetched already: keep the window full from the directories a tree reader goes to next.
    if (i >= entries.length) {
      const ahead = entries.length - 1 - index;
      this.nextDirectories(parent, SIBLING_PREFETCH_FILES - ahead, SIBLING_PREFETCH_BYTES - bytes, out, sizes);
    }
    return { siblings: out, siblingSizes: sizes };
  }

  /**
   * Files from the start of the directories after `dir` in its parent
   * (each one's own state records how far, so its first read continues
   * the window instead of starting one), while `files` of the window are
   * left, counting those fetched there already; bounded in bytes.
   */
  private nextDirectories(dir: string, files: number, bytes: number, out: string[], sizes: number[]): void {
    if (dir === '/' || files <= 0) return;
    const up = parentKey(dir);
    const entries = this.listing(up);
    const at = entries ? sortedIndexOf(entries, baseName(dir)) : -1;
    if (!entries || at < 0) return;
    let left = files;
    let budget = bytes;
    for (let j = at + 1, dirs = 0; j < entries.length && j <= at + NEXT_SCAN && dirs < NEXT_DIRECTORIES && left > 0 && budget > 0; j++) {
      const e = entries[j];
      if (!e.attr || !isDirMode(e.attr.mode)) continue;
      dirs++;
      const next = childKey(up, e.name);
      const listed = this.listing(next);
      if (!listed) continue;
      const st = this.opened.get(next) ?? { last: -1, prefetched: -1 };
      left -= st.prefetched + 1;
      let k = st.prefetched + 1;
      for (; k < listed.length && left > 0 && budget > 0; k++) {
        const f = listed[k];
        if (!f.attr || !isRegMode(f.attr.mode) || f.attr.size === 0) continue;
        out.push(childKey(next, f.name));
        sizes.push(f.attr.size);
        budget -= Math.min(f.attr.size, CHUNK_SIZE);
        left--;
      }
      st.prefetched = k - 1;
      this.opened.set(next, st);
    }
  }

  /** Forgets every read pattern (the mount is going away). */
  clear(): void {
    this.reading.clear();
    this.opened.clear();
  }
}
