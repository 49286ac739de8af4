import { isMap, isScalar, isSeq, type Node } from 'yaml';
import type { KindTypes, OptionDecl, OptionKind } from './declare';

export type Parsed<V> = { ok: true; value: V } | { ok: false; problem: string };

const ok = <V>(value: V): Parsed<V> => ({ ok: true, value });
const bad = <V>(problem: string): Parsed<V> => ({ ok: false, problem });

/** What each kind expects, as problems say it. */
const EXPECTED: Record<OptionKind, string> = {
  string: 'a string',
  path: 'a path',
  'positive-int': 'a positive integer',
  'non-negative-int': 'a non-negative integer',
  port: 'a port number (1-65535)',
  boolean: 'true or false',
  'string-list': 'a list of strings',
};

const DECIMAL = /^[0-9]+$/;
const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);

function quoted(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}

function intProblem(kind: OptionKind, n: number, got: string): string | undefined {
  if (kind === 'port' && Number.isSafeInteger(n) && (n < 1 || n > 65535)) return `port ${n} is out of range (1-65535)`;
  const fits = Number.isSafeInteger(n) && (kind === 'positive-int' ? n > 0 : n >= 0);
  return fits ? undefined : `expected ${EXPECTED[kind]}, got ${got}`;
}

function checkString(decl: OptionDecl, s: string): Parsed<string> {
  if (s === '') return bad(`expected ${EXPECTED[decl.kind]}, got an empty value`);
  if (decl.kind === 'string' && decl.choices && !decl.choices.includes(s)) {
    return bad(`expected one of ${decl.choices.join(', ')}, got ${quoted(s)}`);
  }
  return ok(s);
}

function splitList(decl: OptionDecl, items: readonly string[]): Parsed<readonly string[]> {
  const sep = decl.kind === 'string-list' ? decl.split : undefined;
  const out = sep === undefined ? [...items] : items.flatMap((i) => i.split(sep).map((p) => p.trim()));
  if (out.length === 0 || out.some((s) => s === '')) return bad(`expected ${EXPECTED['string-list']}, got an empty value`);
  return ok(out);
}

/**
 * A value typed on the command line or in a variable. Lists arrive as the
 * repeated flag's values (or one variable's text), booleans as commander's
 * true/false for `--x`/`--no-x`.
 */
export function fromText<K extends OptionKind>(decl: OptionDecl & { kind: K }, raw: string | readonly string[] | boolean): Parsed<KindTypes[K]> {
  return fromTextAny(decl, raw) as Parsed<KindTypes[K]>;
}

function fromTextAny(decl: OptionDecl, raw: string | readonly string[] | boolean): Parsed<KindTypes[OptionKind]> {
  if (decl.kind === 'string-list') return splitList(decl, typeof raw === 'boolean' ? [String(raw)] : typeof raw === 'string' ? [raw] : raw);
  // A repeated single-valued flag: the last one counts, as with any CLI.
  const text = typeof raw === 'boolean' ? raw : typeof raw === 'string' ? raw : raw[raw.length - 1];
  switch (decl.kind) {
    case 'boolean': {
      if (typeof text === 'boolean') return ok(text);
      const t = text.trim().toLowerCase();
      if (TRUE_WORDS.has(t)) return ok(true);
      if (FALSE_WORDS.has(t)) return ok(false);
      return bad(`expected ${EXPECTED.boolean}, got ${quoted(text)}`);
    }
    case 'positive-int':
    case 'non-negative-int':
    case 'port': {
      const t = String(text).trim();
      if (!DECIMAL.test(t)) return bad(`expected ${EXPECTED[decl.kind]}, got ${quoted(String(text))}`);
      const n = Number(t);
      const p = intProblem(decl.kind, n, quoted(String(text)));
      return p ? bad(p) : ok(n);
    }
    case 'string':
    case 'path':
      return checkString(decl, String(text));
  }
}

/** How a problem names what the file held instead. */
export function describeNode(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || v === undefined) return 'no value';
    if (typeof v === 'string') return quoted(v);
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
    return 'a tagged value';
  }
  return 'something else';
}

function scalarValue(node: unknown): unknown {
  return isScalar(node) ? node.value : undefined;
}

function fromScalar(decl: OptionDecl, node: unknown): Parsed<KindTypes[OptionKind]> {
  const v = scalarValue(node);
  const got = describeNode(node);
  if (v === null || v === undefined) return bad(`expected ${EXPECTED[decl.kind]}, got ${got} (leave the key out for the default)`);
  switch (decl.kind) {
    case 'boolean':
      return typeof v === 'boolean' ? ok(v) : bad(`expected ${EXPECTED.boolean}, got ${got}`);
    case 'positive-int':
    case 'non-negative-int':
    case 'port': {
      if (typeof v !== 'number') return bad(`expected ${EXPECTED[decl.kind]}, got ${got}`);
      const p = intProblem(decl.kind, v, got);
      return p ? bad(p) : ok(v);
    }
    case 'string':
    case 'path':
      return typeof v === 'string' ? checkString(decl, v) : bad(`expected ${EXPECTED[decl.kind]}, got ${got}${typeof v === 'number' ? ' (quote it)' : ''}`);
    case 'string-list':
      return typeof v === 'string' ? splitList(decl, [v]) : bad(`expected ${EXPECTED['string-list']}, got ${got}`);
  }
}

/** A value as the YAML file holds it (aliases already resolved by the caller). */
export function fromYaml<K extends OptionKind>(decl: OptionDecl & { kind: K }, node: Node | null): Parsed<KindTypes[K]> {
  return fromYamlAny(decl, node) as Parsed<KindTypes[K]>;
}

function fromYamlAny(decl: OptionDecl, node: Node | null): Parsed<KindTypes[OptionKind]> {
  if (decl.kind === 'string-list' && isSeq(node)) {
    const items: string[] = [];
    for (const [i, item] of node.items.entries()) {
      const v = scalarValue(item);
      if (typeof v !== 'string') return bad(`item ${i + 1}: expected a string, got ${describeNode(item)}`);
      items.push(v);
    }
    // A YAML list is taken as written: no splitting, but no empty items either.
    if (items.length === 0 || items.some((s) => s === '')) return bad(`expected ${EXPECTED['string-list']}, got an empty value`);
    return ok(items);
  }
  if (isMap(node) || isSeq(node)) return bad(`expected ${EXPECTED[decl.kind]}, got ${describeNode(node)}`);
  return fromScalar(decl, node);
}
