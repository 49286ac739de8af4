import * as fs from 'node:fs';
import * as path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type { Problem } from './problem';
import { describeNode } from './parse-value';

/** A configuration file is a screenful of keys; anything this big is something else. */
export const MAX_CONFIG_BYTES = 1 << 20;
/** One syntax mistake often yields several parser errors; past this many the rest is noise. */
const MAX_SYNTAX_PROBLEMS = 5;

export interface FileEntry {
  key: string;
  /** 1-based line of the key. */
  line: number;
  /** The value, aliases resolved; null for `key:` with nothing after it. */
  value: Node | null;
}

export interface ConfigFile {
  /** As problems name it: the way the operator typed it. */
  path: string;
  /** Absolute directory of the file: relative paths written in it start there. */
  dir: string;
  entries: FileEntry[];
  problems: Problem[];
}

function readError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const human = typeof e.message === 'string' ? /^[A-Z0-9]+: ([^,]+)/.exec(e.message)?.[1] : undefined;
  return e.code ? `cannot read it: ${human ?? e.code} (${e.code})` : `cannot read it: ${String(err)}`;
}

/** The bytes of the file, or the one problem that stops us reading it. */
function readText(file: string): { text: string } | { problem: string } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    return { problem: readError(err) };
  }
  try {
    const st = fs.fstatSync(fd);
    // A FIFO or a device would block or never end.
    if (!st.isFile()) return { problem: st.isDirectory() ? 'is a directory, not a YAML file' : 'is not a regular file' };
    if (st.size > MAX_CONFIG_BYTES) return { problem: `is ${st.size} bytes; a configuration file is at most ${MAX_CONFIG_BYTES}` };
    const bytes = Buffer.alloc(st.size);
    let got = 0;
    while (got < bytes.length) {
      const n = fs.readSync(fd, bytes, got, bytes.length - got, got);
      if (n === 0) break;
      got += n;
    }
    try {
      return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, got)) };
    } catch {
      return { problem: 'is not UTF-8 text' };
    }
  } catch (err) {
    return { problem: readError(err) };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads a YAML configuration file into its top-level keys with their line
 * numbers. Syntax errors, a document that is not a mapping and keys that
 * are not plain names are problems here; what the keys mean is the
 * loader's business.
 */
export function readConfigFile(file: string, shownAs: string = file): ConfigFile {
  const out: ConfigFile = { path: shownAs, dir: path.dirname(path.resolve(file)), entries: [], problems: [] };
  const read = readText(file);
  if ('problem' in read) {
    out.problems.push({ where: shownAs, message: read.problem });
    return out;
  }
  const lines = new LineCounter();
  const doc = parseDocument(read.text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined): number => (offset === undefined ? 1 : lines.linePos(offset).line);
  const seen = new Set<number>();
  for (const e of [...doc.errors, ...doc.warnings]) {
    const line = lineOf(e.pos[0]);
    if (seen.has(line) || seen.size >= MAX_SYNTAX_PROBLEMS) continue;
    seen.add(line);
    // Only the first line: the rest of yaml's message is a code excerpt.
    out.problems.push({ where: `${shownAs}:${line}`, message: `YAML: ${e.message.split('\n')[0]}` });
  }
  if (out.problems.length > 0) return out;

  /** The node an alias stands for, and so for a list's items (options are never nested deeper); a string for an unknown alias. */
  const resolved = (node: Node | null): Node | null | string => {
    const one = (n: Node | null): Node | null | string => (isAlias(n) ? (n.resolve(doc) ?? `unknown alias *${n.source}`) : n);
    const top = one(node);
    if (!isSeq(top)) return top;
    for (const [i, item] of top.items.entries()) {
      const r = one(item as Node | null);
      if (typeof r === 'string') return r;
      top.items[i] = r;
    }
    return top;
  };

  const root = doc.contents;
  // An empty file (or only comments) sets nothing: every option keeps its default.
  if (root === null || (isScalar(root) && root.value === null)) return out;
  if (!isMap(root)) {
    out.problems.push({
      where: `${shownAs}:${lineOf(root.range?.[0])}`,
      message: `expected a mapping of option names to values (like "listen: 127.0.0.1:7400"), got ${describeNode(root)}`,
    });
    return out;
  }
  for (const pair of root.items) {
    const keyNode = pair.key as Node | null;
    const line = lineOf(keyNode?.range?.[0]);
    const key = isScalar(keyNode) ? keyNode.value : undefined;
    if (typeof key !== 'string') {
      out.problems.push({ where: `${shownAs}:${line}`, message: `keys are option names, got ${describeNode(keyNode)}` });
      continue;
    }
    const value = resolved((pair.value as Node | null) ?? null);
    if (typeof value === 'string') {
      out.problems.push({ where: `${shownAs}:${line}: ${key}`, message: value });
      continue;
    }
    out.entries.push({ key, line, value });
  }
  return out;
}
