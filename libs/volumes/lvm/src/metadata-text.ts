import { Errno, StrataError } from '@strata/errors';

/**
 * The LVM2 text metadata format (libdm's config syntax, libdm-config.c):
 * `key = value` and `name { ... }` sections, values that are integers, floats,
 * "strings" (backslash escapes `\"` and `\\`), 'strings' (no escapes), bare
 * words, or `[ ... ]` arrays of those; `#` comments to the end of the line.
 */
export type ConfigScalar = string | number;
export type ConfigValue = ConfigScalar | ConfigScalar[];

export interface ConfigSection {
  readonly kind: 'section';
  /** Keys in file order. A repeated section merges into the first; a repeated value replaces it (as lvm2 does). */
  readonly entries: Map<string, ConfigNode>;
}
export type ConfigNode = ConfigSection | ConfigValue;

/** Deeper than any metadata lvm2 writes (VG, logical_volumes, LV, segment: 4) by far. */
export const MAX_DEPTH = 64;
/** lvm2 refuses metadata text larger than its metadata area; 64 MiB is far beyond any real VG. */
export const MAX_TEXT_BYTES = 64 * 1024 * 1024;

export function isSection(node: ConfigNode | undefined): node is ConfigSection {
  return typeof node === 'object' && node !== null && !Array.isArray(node);
}

type TokenKind = 'eof' | 'sectionBegin' | 'sectionEnd' | 'arrayBegin' | 'arrayEnd' | 'comma' | 'eq' | 'int' | 'float' | 'string' | 'escapedString' | 'bare' | 'identifier';

interface Token {
  kind: TokenKind;
  start: number;
  end: number;
}

const SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);
const DIGITS = /[0-9]/;

class Parser {
  private pos = 0;
  private line = 1;
  private token: Token = { kind: 'eof', start: 0, end: 0 };

  constructor(private readonly text: string) {
    this.next('sectionEnd');
  }

  private fail(message: string, at: number = this.token.start): never {
    throw new StrataError(Errno.EUCLEAN, `LVM2 metadata: parse error at character ${at + 1} (line ${this.line}): ${message}`);
  }

  private skipSpace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t[this.pos];
      if (c === '#') {
        while (this.pos < t.length && t[this.pos] !== '\n' && t[this.pos] !== '\0') this.pos++;
      } else if (SPACE.has(c)) {
        if (c === '\n') this.line++;
        this.pos++;
      } else {
        break;
      }
    }
  }

  /** libdm's _get_token: what a token is depends on the one before (values follow =, [ and ,). */
  private next(previous: TokenKind): void {
    const t = this.text;
    this.skipSpace();
    const start = this.pos;
    if (start >= t.length || t[start] === '\0') {
      this.token = { kind: 'eof', start, end: start };
      return;
    }
    const valuesAllowed = previous === 'eq' || previous === 'arrayBegin' || previous === 'comma';
    const c = t[start];
    let end = start + 1;
    let kind: TokenKind;
    switch (c) {
      case '{':
        kind = 'sectionBegin';
        break;
      case '}':
        kind = 'sectionEnd';
        break;
      case '[':
        kind = 'arrayBegin';
        break;
      case ']':
        kind = 'arrayEnd';
        break;
      case ',':
        kind = 'comma';
        break;
      case '=':
        kind = 'eq';
        break;
      case '"':
        kind = 'escapedString';
        while (end < t.length && t[end] !== '\0' && t[end] !== '"') {
          if (t[end] === '\\' && end + 1 < t.length && t[end + 1] !== '\0') end++;
          end++;
        }
        if (end >= t.length || t[end] !== '"') this.fail('unterminated string', start);
        end++;
        break;
      case "'":
        kind = 'string';
        while (end < t.length && t[end] !== '\0' && t[end] !== "'") end++;
        if (end >= t.length || t[end] !== "'") this.fail('unterminated string', start);
        end++;
        break;
      default:
        if (valuesAllowed && (DIGITS.test(c) || c === '+' || c === '-' || c === '.')) {
          kind = c === '.' ? 'float' : 'int';
          while (end < t.length) {
            if (DIGITS.test(t[end])) {
              end++;
            } else if (t[end] === '.' && kind !== 'float') {
              kind = 'float';
              end++;
            } else {
              break;
            }
          }
          break;
        }
        kind = valuesAllowed ? 'bare' : 'identifier';
        while (end < t.length) {
          const d = t[end];
          if (d === '\0' || SPACE.has(d) || d === '#' || d === '=' || d === '{' || d === '}') break;
          end++;
        }
    }
    this.pos = end;
    this.token = { kind, start, end };
  }

  /** The current token's kind, read through a call so that TypeScript does not narrow it across next(). */
  private kind(): TokenKind {
    return this.token.kind;
  }

  private expect(kind: TokenKind, what: string): void {
    if (this.token.kind !== kind) this.fail(`expected ${what}`);
    this.next(kind);
  }

  private tokenText(): string {
    return this.text.slice(this.token.start, this.token.end);
  }

  file(): ConfigSection {
    const root: ConfigSection = { kind: 'section', entries: new Map() };
    while (this.kind() !== 'eof') this.section(root, 1);
    return root;
  }

  private key(): string {
    const tok = this.token;
    let key: string;
    if (tok.kind === 'escapedString') key = unescape(this.text.slice(tok.start + 1, tok.end - 1));
    else if (tok.kind === 'string') key = this.text.slice(tok.start + 1, tok.end - 1);
    else if (tok.kind === 'identifier') key = this.tokenText();
    else this.fail('expected a key or section name');
    if (key === '') this.fail('empty section identifier');
    this.next(tok.kind);
    return key;
  }

  private section(parent: ConfigSection, depth: number): void {
    if (depth > MAX_DEPTH) this.fail(`sections nested deeper than ${MAX_DEPTH}`);
    const key = this.key();
    if (this.kind() === 'sectionBegin') {
      this.next('sectionBegin');
      const existing = parent.entries.get(key);
      const node: ConfigSection = isSection(existing) ? existing : { kind: 'section', entries: new Map() };
      if (existing === undefined) parent.entries.set(key, node);
      while (this.kind() !== 'sectionEnd') {
        if (this.kind() === 'eof') this.fail(`section "${key}" is not closed`);
        this.section(node, depth + 1);
      }
      this.next('sectionEnd');
      return;
    }
    this.expect('eq', `"=" or "{" after "${key}"`);
    const value = this.value(key);
    const existing = parent.entries.get(key);
    if (!isSection(existing)) parent.entries.set(key, value);
  }

  private value(key: string): ConfigValue {
    if (this.kind() !== 'arrayBegin') return this.scalar(key);
    this.next('arrayBegin');
    const items: ConfigScalar[] = [];
    while (this.kind() !== 'arrayEnd') {
      if (this.kind() === 'eof') this.fail(`array of "${key}" is not closed`);
      items.push(this.scalar(key));
      if (this.kind() === 'comma') this.next('comma');
    }
    this.next('arrayEnd');
    return items;
  }

  private scalar(key: string): ConfigScalar {
    const tok = this.token;
    const raw = this.tokenText();
    let v: ConfigScalar;
    switch (tok.kind) {
      case 'int':
        v = parseInteger(raw, key, () => this.fail(`"${raw}" is not an integer lvm2 can read`));
        break;
      case 'float': {
        const f = Number(raw);
        if (!Number.isFinite(f)) this.fail(`"${raw}" is not a number`);
        v = f;
        break;
      }
      case 'escapedString':
        v = unescape(raw.slice(1, -1));
        break;
      case 'string':
        v = raw.slice(1, -1);
        break;
      case 'bare':
        v = raw;
        break;
      default:
        this.fail(`expected a value for "${key}"`);
    }
    this.next(tok.kind);
    return v;
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * strtoll's answer, as lvm2 reads it. Values beyond 2^53 lose precision here;
 * the metadata reader refuses them wherever a size or offset is expected.
 */
function parseInteger(raw: string, key: string, fail: () => never): number {
  if (!/^[+-]?[0-9]+$/.test(raw)) fail();
  const big = BigInt(raw);
  if (big < INT64_MIN || big > INT64_MAX) {
    // lvm2 < 2.02.169 on 32-bit wrote overflowing creation times; lvm2 substitutes 2018-05-24.
    if (key === 'creation_time') return 1527120000;
    fail();
  }
  return Number(big);
}

/** dm_unescape_double_quotes: `\"` and `\\` lose their backslash; any other backslash stays. */
function unescape(s: string): string {
  return s.replace(/\\(["\\])/g, '$1');
}

/** Parses LVM2 metadata text; bad syntax is EUCLEAN naming where. */
export function parseMetadataText(text: string): ConfigSection {
  if (text.length > MAX_TEXT_BYTES) throw new StrataError(Errno.EUCLEAN, `LVM2 metadata: text of ${text.length} characters is larger than ${MAX_TEXT_BYTES}`);
  return new Parser(text).file();
}
