import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Attr, DirEntry } from '@strata/protocol';
import { CHUNK_SIZE } from './chunk-cache';
import { MAX_READAHEAD_CHUNKS, PAGE_SIZE, ReadPolicy, SIBLING_PREFETCH_BYTES, SIBLING_PREFETCH_FILES, chunkAt, pagesOf } from './read-policy';

const KIB = 1024;
const FILE = 0o100644;
const DIR = 0o040755;

function attr(mode: number, size: number): Attr {
  return { ino: 1, mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };
}

/** Entries named f000, f001, ... (sorted bytewise, as listings are). */
function files(count: number, size: number): DirEntry[] {
  return Array.from({ length: count }, (_, i) => ({ name: Buffer.from(`f${String(i).padStart(3, '0')}`), attr: attr(FILE, size) }));
}

function policy(listings: Record<string, DirEntry[]> = {}, live = false): ReadPolicy {
  return new ReadPolicy(live, (dir) => listings[dir]);
}

/** Reads a file front to back in `step`-byte reads, each served in full; returns every read's readahead. */
function readThrough(p: ReadPolicy, key: string, size: number, step: number): number[][] {
  const out: number[][] = [];
  for (let pos = 0; pos < size; pos += step) {
    const plan = p.plan(key, pos, step, size);
    assert.equal(plan.unit, 'chunk', `read at ${pos} is sequential`);
    out.push(p.ahead(plan, plan.end - pos));
  }
  return out;
}

test('pieces are aligned 1 MiB chunks, and for a jump the whole 4 KiB pages it reads', () => {
  assert.equal(CHUNK_SIZE, 1 << 20);
  assert.equal(PAGE_SIZE, 4 * KIB);
  assert.deepEqual(chunkAt(3 * CHUNK_SIZE + 5), { index: 3, start: 3 * CHUNK_SIZE, size: CHUNK_SIZE });
  assert.deepEqual(pagesOf(2 * CHUNK_SIZE + 5 * PAGE_SIZE, 2 * CHUNK_SIZE + 6 * PAGE_SIZE), { start: 2 * CHUNK_SIZE + 5 * PAGE_SIZE, size: PAGE_SIZE }, 'a page read: that page');
  assert.deepEqual(pagesOf(PAGE_SIZE - 1, PAGE_SIZE + 1), { start: 0, size: 2 * PAGE_SIZE }, 'across a page boundary: both pages');
  assert.deepEqual(pagesOf(10 * PAGE_SIZE + 7, 10 * PAGE_SIZE + 9), { start: 10 * PAGE_SIZE, size: PAGE_SIZE });
  assert.deepEqual(pagesOf(0, 128 * KIB), { start: 0, size: 128 * KIB });
  assert.deepEqual(pagesOf(5, 5), { start: 0, size: PAGE_SIZE }, 'never empty');
});

test('a sequential reader moves chunks, its readahead window grows with the streak up to 8 chunks and stops at the last chunk', () => {
  const p = policy();
  const size = 20 * CHUNK_SIZE;
  const ahead = readThrough(p, '/big', size, CHUNK_SIZE);
  assert.deepEqual(ahead[0], [1]);
  assert.deepEqual(ahead[1], [2, 3]);
  assert.deepEqual(ahead[2], [3, 4, 5]);
  assert.equal(MAX_READAHEAD_CHUNKS, 8);
  assert.deepEqual(ahead[9], [10, 11, 12, 13, 14, 15, 16, 17], 'the window stops growing at 8 chunks');
  assert.deepEqual(ahead[15], [16, 17, 18, 19], 'nothing past the last chunk of a sealed file');
  assert.deepEqual(ahead[19], []);
});

test('the first read of a file is sequential; its readahead starts at the next chunk boundary', () => {
  const p = policy();
  const plan = p.plan('/f', 0, 128 * KIB, 3 * CHUNK_SIZE + 1234);
  assert.deepEqual({ unit: plan.unit, end: plan.end, streak: plan.streak }, { unit: 'chunk', end: 128 * KIB, streak: 1 });
  assert.deepEqual(p.ahead(plan, 128 * KIB), [1]);
  assert.deepEqual(p.ahead(plan, 0), [], 'nothing read (end of file): nothing fetched ahead');
});

test('a jump fetches its pages and no readahead; reads near the last end still count as sequential (out-of-order readahead)', () => {
  const p = policy();
  const size = 64 * CHUNK_SIZE;
  const jump = p.plan('/f', 10 * CHUNK_SIZE, 4 * KIB, size);
  assert.deepEqual({ unit: jump.unit, streak: jump.streak }, { unit: 'pages', streak: 0 });
  assert.deepEqual(p.ahead(jump, 4 * KIB), []);
  const near = p.plan('/f', 10 * CHUNK_SIZE + 4 * KIB + 2 * CHUNK_SIZE, 4 * KIB, size);
  assert.equal(near.unit, 'chunk', 'within two chunks of the last end');
  const behind = p.plan('/f', 11 * CHUNK_SIZE + 4 * KIB, 4 * KIB, size);
  assert.equal(behind.unit, 'chunk', 'a little behind the furthest end');
  assert.equal(behind.streak, 2);
  const far = p.plan('/f', 30 * CHUNK_SIZE, 4 * KIB, size);
  assert.equal(far.unit, 'pages');
  const restart = p.plan('/f', 0, 4 * KIB, size);
  assert.deepEqual({ unit: restart.unit, streak: restart.streak }, { unit: 'chunk', streak: 1 }, 'reading from the start again is sequential');
  assert.equal(p.plan('/other', 10 * CHUNK_SIZE, 4 * KIB, size).unit, 'pages', 'patterns are per path');
});

test('sealed reads stop at the known size; LIVE ones at the request, with readahead past the size', () => {
  const sealed = policy().plan('/f', 0, 128 * KIB, 1000);
  assert.equal(sealed.end, 1000);
  const live = policy({}, true);
  const plan = live.plan('/f', 0, 128 * KIB, 1000);
  assert.equal(plan.end, 128 * KIB);
  assert.deepEqual(live.ahead(plan, 128 * KIB), [1], 'a LIVE file may have grown');
});

test('reading the files of a directory in order prefetches the next 32 regular, non-empty files', () => {
  const entries = files(80, 100);
  entries[5] = { name: entries[5].name, attr: attr(DIR, 0) };
  entries[6] = { name: entries[6].name, attr: attr(FILE, 0) };
  entries[7] = { name: entries[7].name, attr: undefined };
  const p = policy({ '/d': entries });
  assert.deepEqual(p.plan('/d/f000', 0, 4 * KIB, 100).siblings, [], 'one file read is no pattern yet');
  const second = p.plan('/d/f001', 0, 4 * KIB, 100).siblings;
  assert.equal(SIBLING_PREFETCH_FILES, 32);
  assert.equal(second.length, 32);
  assert.equal(second[0], '/d/f002');
  assert.ok(!second.includes('/d/f005') && !second.includes('/d/f006') && !second.includes('/d/f007'), 'no directories, empty files or unknown entries');
  assert.equal(second[31], '/d/f036');
  const third = p.plan('/d/f002', 0, 4 * KIB, 100).siblings;
  assert.deepEqual([third.length, third[0], third[31]], [32, '/d/f037', '/d/f068'], 'continues where the last step stopped');
  assert.deepEqual(p.plan('/d/f002', 4 * KIB, 4 * KIB, 100).siblings, [], 'only reads from a file start count');
  assert.deepEqual(p.plan('/d/f001', 0, 4 * KIB, 100).siblings, [], 'going back is no pattern');
  assert.deepEqual(p.plan('/d/f030', 0, 4 * KIB, 100).siblings, [], 'a skip of more than 16 files is no pattern');
  const rest = p.plan('/d/f031', 0, 4 * KIB, 100).siblings;
  assert.deepEqual(rest, files(80, 100).slice(69).map((e) => `/d/${e.name.toString()}`), 'the files not prefetched yet, to the end of the directory');
});

test("sibling prefetch names each file's size (from the listing), so its fetch asks for no more than the file", () => {
  const entries = files(10, 100).map((e, i) => ({ name: e.name, attr: attr(FILE, 100 + i) }));
  const p = policy({ '/d': entries });
  p.plan('/d/f000', 0, 4 * KIB, 100);
  const plan = p.plan('/d/f001', 0, 4 * KIB, 101);
  assert.deepEqual(plan.siblings, ['/d/f002', '/d/f003', '/d/f004', '/d/f005', '/d/f006', '/d/f007', '/d/f008', '/d/f009']);
  assert.deepEqual(plan.siblingSizes, [102, 103, 104, 105, 106, 107, 108, 109]);
  assert.deepEqual(p.plan('/d/f002', 4 * KIB, 4 * KIB, 102).siblingSizes, []);
});

test('at the end of a directory the prefetch goes on into the next directories, and reading there continues the window', () => {
  const dir = (name: string): DirEntry => ({ name: Buffer.from(name), attr: attr(DIR, 0) });
  const listings: Record<string, DirEntry[]> = {
    '/': [dir('a'), { name: Buffer.from('afile'), attr: attr(FILE, 100) }, dir('b'), dir('c'), dir('d')],
    '/a': files(5, 100),
    '/b': [dir('0sub'), ...files(10, 100)],
    '/c': files(40, 100),
    '/d': files(40, 100),
  };
  const p = policy(listings);
  p.plan('/a/f000', 0, 4 * KIB, 100);
  const step = p.plan('/a/f001', 0, 4 * KIB, 100);
  const expected = [
    ...['f002', 'f003', 'f004'].map((n) => `/a/${n}`),
    ...files(10, 100).map((e) => `/b/${e.name.toString()}`),
    // 32 files in the window: the 3 left in /a, then /b's 10 and /c's first 19.
    ...files(19, 100).map((e) => `/c/${e.name.toString()}`),
  ];
  assert.deepEqual(step.siblings, expected);
  assert.equal(step.siblingSizes.length, expected.length);
  // The last files of /a: nothing new (the window is full); in /b the first read continues it.
  assert.deepEqual(p.plan('/a/f002', 0, 4 * KIB, 100).siblings, []);
  const inB = p.plan('/b/f000', 0, 4 * KIB, 100).siblings;
  assert.ok(inB.length > 0 && inB.every((k) => k.startsWith('/c/') || k.startsWith('/d/')), 'from where the prefetch stopped');
  assert.equal(inB[0], '/c/f019');
  assert.equal(new Set([...expected, ...inB]).size, expected.length + inB.length, 'nothing fetched twice');
});

test('sibling prefetch is bounded in bytes, counting at most one chunk per file', () => {
  const p = policy({ '/d': files(40, 3 * CHUNK_SIZE) });
  p.plan('/d/f000', 0, 4 * KIB, 3 * CHUNK_SIZE);
  const siblings = p.plan('/d/f001', 0, 4 * KIB, 3 * CHUNK_SIZE).siblings;
  assert.equal(siblings.length, SIBLING_PREFETCH_BYTES / CHUNK_SIZE);
});

test('no sibling prefetch for LIVE layers, unlisted directories or unlisted files', () => {
  const live = policy({ '/d': files(10, 100) }, true);
  live.plan('/d/f000', 0, 4 * KIB, 100);
  assert.deepEqual(live.plan('/d/f001', 0, 4 * KIB, 100).siblings, []);
  const unlisted = policy();
  unlisted.plan('/d/f000', 0, 4 * KIB, 100);
  assert.deepEqual(unlisted.plan('/d/f001', 0, 4 * KIB, 100).siblings, []);
  const p = policy({ '/d': files(10, 100) });
  p.plan('/d/f000', 0, 4 * KIB, 100);
  assert.deepEqual(p.plan('/d/zzz', 0, 4 * KIB, 100).siblings, []);
  assert.equal(p.plan('/d/f001', 0, 4 * KIB, 100).siblings.length, 8, 'an unlisted file leaves the pattern alone');
});

test('a sealed file read whole by its first read: later reads of it are planned as sequential, with nothing ahead; a LIVE one keeps its streak', () => {
  const p = policy();
  const whole = p.plan('/small', 0, 128 * KIB, 5000);
  assert.deepEqual({ unit: whole.unit, end: whole.end, streak: whole.streak }, { unit: 'chunk', end: 5000, streak: 1 });
  assert.deepEqual(p.ahead(whole, 5000), []);
  const again = p.plan('/small', 4096, 4 * KIB, 5000);
  assert.deepEqual({ unit: again.unit, end: again.end }, { unit: 'chunk', end: 5000 }, 'near the start: sequential');
  assert.deepEqual(p.ahead(again, 904), []);
  const live = policy({}, true);
  live.plan('/grows', 0, 128 * KIB, 5000);
  const next = live.plan('/grows', 128 * KIB, 128 * KIB, 5000);
  assert.deepEqual({ unit: next.unit, streak: next.streak }, { unit: 'chunk', streak: 2 }, 'a LIVE file may have grown: its pattern is kept');
});
