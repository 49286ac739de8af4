import * as path from 'node:path';
import type { Node } from 'yaml';
import { readConfigFile, type ConfigFile, type FileEntry } from './config-file';
import { camelName, RESERVED_NAMES, type ConfigValues, type KindTypes, type OptionDecl, type OptionKind, type OptionTable, type SourceKind } from './declare';
import { fromText, fromYaml, type Parsed } from './parse-value';
import { ConfigError, type Problem } from './problem';
import { closest } from './suggest';

type AnyValue = KindTypes[OptionKind];

/** Where one value came from. */
export interface Origin {
  source: SourceKind;
  /** `--listen`, `$STRATA_LISTEN`, `resolver.yaml:3`; absent for a default. */
  where?: string;
}

export interface LoadedConfig<T extends OptionTable> {
  values: ConfigValues<T>;
  /** By option name (kebab-case); an option with no value and no default has none. */
  origins: Readonly<Record<string, Origin>>;
  /** The configuration file read, as given, if any. */
  file?: string;
  /** Where the file's name came from (--config or the variable). */
  fileOrigin?: Origin;
  /**
   * Values given but not used because a flag or a variable beat them (a
   * unit's Environment= over the file the operator edited): each service
   * logs them at warn when it starts, --check-config shows them.
   */
  shadowed: Shadowed[];
}

/** One option given in more than one place: what was used, and where the others were. */
export interface Shadowed {
  option: string;
  by: Origin;
  over: Origin[];
}

/** One commander option to declare: `program.option(spec.flags, spec.description, spec.collect)`. */
export interface FlagSpec {
  flags: string;
  description: string;
  /** For repeatable flags: commander calls it with each value and what it collected so far. */
  collect?: (value: string, previous: unknown) => string[];
}

export interface LoadInput {
  /** commander's `program.opts()`: attribute names, raw strings (the specs declare no parsers or defaults). */
  flags: Readonly<Record<string, unknown>>;
  env: Readonly<Record<string, string | undefined>>;
  /** Relative paths from flags, variables and defaults start here (default process.cwd()). */
  cwd?: string;
}

const CONFIG_ATTRIBUTE = 'config';

/** A variable set to the empty string counts as unset (systemd's `Environment=X=`). */
function envValue(env: LoadInput['env'], name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

function collect(value: string, previous: unknown): string[] {
  return [...(Array.isArray(previous) ? (previous as string[]) : []), value];
}

function defaultText(d: OptionDecl): string | undefined {
  if (d.defaultHelp !== undefined) return d.defaultHelp;
  if (d.default === undefined) return undefined;
  return Array.isArray(d.default) ? d.default.join(d.kind === 'string-list' && d.split ? d.split : ', ') : String(d.default);
}

const PLACEHOLDER: Record<OptionKind, string> = {
  string: 'value',
  path: 'path',
  'positive-int': 'n',
  'non-negative-int': 'n',
  port: 'port',
  boolean: '',
  'string-list': 'value',
};

function isRawFlag(v: unknown): v is string | readonly string[] | boolean {
  return typeof v === 'string' || typeof v === 'boolean' || (Array.isArray(v) && v.every((x) => typeof x === 'string'));
}

/** Flags and variables first, then the file's problems top to bottom, the way an operator fixes them. */
function inReadingOrder(problems: Problem[], fileName: string | undefined): Problem[] {
  const lineOf = (p: Problem): number => {
    if (fileName === undefined || !p.where.startsWith(`${fileName}:`)) return -1;
    const n = /^(\d+)/.exec(p.where.slice(fileName.length + 1));
    return n ? Number(n[1]) : 0;
  };
  return problems.map((p, i) => ({ p, i, line: lineOf(p) })).sort((a, b) => a.line - b.line || a.i - b.i).map((x) => x.p);
}

/**
 * One service's configuration: its declared options become commander
 * flags, environment variables and YAML keys, loaded with the precedence
 * flag > variable > file > default. Every value given is checked, even one
 * a higher source overrides: a broken file is reported while a flag
 * happens to hide it, not on the day the flag is dropped.
 */
export class ServiceConfig<T extends OptionTable> {
  constructor(
    readonly table: T,
    /** The variable that names the configuration file, like --config. */
    readonly configEnv: string,
  ) {
    if (Object.keys(table).some((n) => RESERVED_NAMES.has(n))) throw new TypeError('an option uses a reserved name');
  }

  get names(): string[] {
    return Object.keys(this.table);
  }

  /** --config and every declared option, for commander. */
  flagSpecs(): FlagSpec[] {
    const specs: FlagSpec[] = [
      {
        flags: '--config <file.yaml>',
        description: `read options from this YAML file, one "name: value" per flag (e.g. "cache-mb: 512"); flags and variables override it ($${this.configEnv})`,
      },
    ];
    for (const [name, d] of Object.entries(this.table)) {
      const notes = [d.env ? `$${d.env}` : undefined, defaultText(d) !== undefined ? `default ${defaultText(d)}` : undefined].filter(Boolean);
      const description = notes.length > 0 ? `${d.help} (${notes.join('; ')})` : d.help;
      if (d.kind === 'boolean') {
        specs.push({ flags: `--${name}`, description }, { flags: `--no-${name}`, description: `turn --${name} off` });
        continue;
      }
      const flags = `--${name} <${d.arg ?? PLACEHOLDER[d.kind]}>`;
      specs.push(d.kind === 'string-list' ? { flags, description: `${description}; repeatable`, collect } : { flags, description });
    }
    return specs;
  }

  /** Reads the file (if one is named), the variables and the flags; throws a ConfigError listing every problem. */
  load(input: LoadInput): LoadedConfig<T> {
    const cwd = input.cwd ?? process.cwd();
    const problems: Problem[] = [];
    const flagFile = input.flags[CONFIG_ATTRIBUTE];
    let fileOrigin: Origin | undefined;
    let fileName: string | undefined;
    if (typeof flagFile === 'string' && flagFile !== '') {
      fileName = flagFile;
      fileOrigin = { source: 'flag', where: '--config' };
    } else if (envValue(input.env, this.configEnv) !== undefined) {
      fileName = envValue(input.env, this.configEnv);
      fileOrigin = { source: 'env', where: `$${this.configEnv}` };
    }
    let file: ConfigFile | undefined;
    if (fileName !== undefined) {
      file = readConfigFile(path.resolve(cwd, fileName), fileName);
      problems.push(...file.problems);
    }

    const entries = new Map<string, FileEntry>();
    for (const e of file?.entries ?? []) {
      if (Object.hasOwn(this.table, e.key)) {
        entries.set(e.key, e);
        continue;
      }
      const guess = closest(e.key, this.names);
      const hint = e.key === CONFIG_ATTRIBUTE ? ' (a file cannot name another file)' : guess ? ` (did you mean ${guess}?)` : '';
      problems.push({ where: `${fileName}:${e.line}`, message: `unknown key ${JSON.stringify(e.key)}${hint}` });
    }

    const values: Record<string, AnyValue | undefined> = {};
    const origins: Record<string, Origin> = {};
    const shadowed: Shadowed[] = [];
    for (const [name, decl] of Object.entries(this.table)) {
      const given: { origin: Origin; problemAt: string; parsed: Parsed<AnyValue>; base: string }[] = [];
      const raw = input.flags[camelName(name)];
      if (raw !== undefined) {
        const parsed: Parsed<AnyValue> = isRawFlag(raw) ? fromText(decl, raw) : { ok: false, problem: 'unexpected flag value' };
        given.push({ origin: { source: 'flag', where: `--${name}` }, problemAt: `--${name}`, parsed, base: cwd });
      }
      const fromEnv = envValue(input.env, decl.env);
      if (fromEnv !== undefined) {
        given.push({ origin: { source: 'env', where: `$${decl.env}` }, problemAt: `$${decl.env}`, parsed: fromText(decl, fromEnv), base: cwd });
      }
      const entry = entries.get(name);
      if (entry && file) {
        const where = `${fileName}:${entry.line}`;
        given.push({ origin: { source: 'file', where }, problemAt: `${where}: ${name}`, parsed: fromYaml(decl, entry.value as Node | null), base: file.dir });
      }
      // The default stands in only for a value nobody gave, so only then is it checked.
      if (given.length === 0 && decl.default !== undefined) {
        given.push({ origin: { source: 'default' }, problemAt: `${name} (default)`, parsed: { ok: true, value: decl.default }, base: cwd });
      }
      // Every option has its key, unset ones too: the values have one shape whatever was given.
      values[camelName(name)] = undefined;
      let chosen = false;
      for (const g of given) {
        if (!g.parsed.ok) {
          problems.push({ where: g.problemAt, message: g.parsed.problem });
          continue;
        }
        const value = decl.kind === 'path' ? path.resolve(g.base, g.parsed.value as string) : g.parsed.value;
        const check = decl.check as ((v: AnyValue, s: SourceKind) => string | readonly string[] | undefined) | undefined;
        const found = check?.(value, g.origin.source);
        for (const message of typeof found === 'string' ? [found] : (found ?? [])) problems.push({ where: g.problemAt, message });
        if (!chosen) {
          values[camelName(name)] = value;
          origins[name] = g.origin;
          chosen = true;
        }
      }
      const over = given.filter((g) => g.origin !== origins[name] && g.origin.source !== 'default').map((g) => g.origin);
      if (origins[name] && over.length > 0) shadowed.push({ option: name, by: origins[name], over });
    }
    if (problems.length > 0) throw new ConfigError(inReadingOrder(problems, fileName));
    return { values: values as ConfigValues<T>, origins, file: fileName, fileOrigin, shadowed };
  }
}
