import * as fs from 'node:fs';
import type { Tree } from '../support/tree-snapshot';

/**
 * What a fleet compares of a tree, one line per path: type, mode, size and
 * the content's sha256 (regular files) or the link target (symlinks, hex).
 * Path keys are the latin1 spelling of test/support/tree-snapshot.
 */
export type TreeLines = Map<string, string>;

const S_IFMT = 0o170000;
/** A file the host listed but had no time left to hash: not compared (the reader counts these). */
const UNHASHED = '?';
const TYPES: Record<number, string> = { 0o100000: 'f', 0o040000: 'd', 0o120000: 'l' };

export function entryLine(mode: number, size: number, content?: string, link?: string): string {
  const type = TYPES[mode & S_IFMT] ?? 'o';
  return `${type} ${mode.toString(8)} ${size}${content ? ` ${content}` : ''}${link ? ` -> ${link}` : ''}`;
}

/** The kernel's side, from readKernelTree. */
export function treeLines(tree: Tree): TreeLines {
  const out: TreeLines = new Map();
  for (const [p, e] of tree) out.set(p, entryLine(e.mode, e.size, e.content, e.link));
  return out;
}

interface DumpEntry {
  p: string;
  mode: number;
  size: number;
  sha?: string;
  link?: string;
}

/** A host's side: the JSON lines a reader wrote. */
export function readDump(file: string): TreeLines {
  const out: TreeLines = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as DumpEntry;
    const unhashed = (e.mode & S_IFMT) === 0o100000 && e.sha === undefined;
    out.set(e.p, unhashed ? `${entryLine(e.mode, e.size)} ${UNHASHED}` : entryLine(e.mode, e.size, e.sha, e.link));
  }
  return out;
}

/** Readable differences (empty when equal), at most `limit` of them. */
export function compareDumps(expected: TreeLines, actual: TreeLines, limit = 50): string[] {
  const out: string[] = [];
  for (const [p, want] of expected) {
    const got = actual.get(p);
    if (got === undefined) out.push(`missing ${JSON.stringify(p)}`);
    else if (got.endsWith(` ${UNHASHED}`) && want.startsWith(got.slice(0, -1))) continue;
    else if (got !== want) out.push(`${JSON.stringify(p)}: kernel ${want}, host ${got}`);
    if (out.length >= limit) return out;
  }
  for (const p of actual.keys()) {
    if (!expected.has(p)) out.push(`only on the host: ${JSON.stringify(p)}`);
    if (out.length >= limit) return out;
  }
  return out;
}

/** Regular files and their bytes in a tree. */
export function fileStats(t: TreeLines): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const v of t.values()) {
    if (!v.startsWith('f ')) continue;
    files++;
    bytes += Number(v.split(' ')[2]);
  }
  return { files, bytes };
}
