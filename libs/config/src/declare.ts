/** What an option holds, by kind: the one place a kind gets its TypeScript type. */
export interface KindTypes {
  string: string;
  /** A file or directory; relative paths are taken from the working directory, or from the config file's directory for a value written in the file. */
  path: string;
  'positive-int': number;
  'non-negative-int': number;
  /** 1-65535. */
  port: number;
  boolean: boolean;
  /** Repeatable flag, YAML list. */
  'string-list': readonly string[];
}

export type OptionKind = keyof KindTypes;

/** Where a value came from, highest precedence first. */
export type SourceKind = 'flag' | 'env' | 'file' | 'default';

interface CommonDecl<K extends OptionKind> {
  readonly kind: K;
  /** One line for --help, without the default or the variable (added from the fields below). */
  readonly help: string;
  /** Placeholder in --help, e.g. "host:port". */
  readonly arg?: string;
  /** Environment variable that sets it: below a flag, above the file. */
  readonly env?: string;
  readonly default?: KindTypes[K];
  /** How --help words the default when the value alone would mislead (a computed or conditional default). */
  readonly defaultHelp?: string;
  /** The problems with a well-typed value (each one line, without the option's name), or undefined. Told where the value came from. */
  readonly check?: (value: KindTypes[K], source: SourceKind) => string | readonly string[] | undefined;
  /** How --check-config shows the value (a URL without its password). */
  readonly show?: (value: KindTypes[K]) => KindTypes[K];
}

export interface StringDecl extends CommonDecl<'string'> {
  /** The only accepted values. */
  readonly choices?: readonly string[];
}

export interface ListDecl extends CommonDecl<'string-list'> {
  /** Flag and variable values are also split on this ("a:1,b:2"); a YAML list is taken as it is. */
  readonly split?: string;
}

export type OptionDecl =
  | StringDecl
  | CommonDecl<'path'>
  | CommonDecl<'positive-int'>
  | CommonDecl<'non-negative-int'>
  | CommonDecl<'port'>
  | CommonDecl<'boolean'>
  | ListDecl;

/** A service's options by long flag name (kebab-case), which is also the YAML key. */
export type OptionTable = Readonly<Record<string, OptionDecl>>;

/** Names reserved for the loader itself: never a service option. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(['config', 'help']);

type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;

type ValueOf<D> = D extends { readonly kind: infer K extends OptionKind } ? KindTypes[K] : never;

/** The loaded values, keyed as commander keys them (`cache-mb` → `cacheMb`); an option without a default may be undefined. */
export type ConfigValues<T extends OptionTable> = {
  -readonly [N in keyof T & string as Camel<N>]: T[N] extends { readonly default: unknown } ? ValueOf<T[N]> : ValueOf<T[N]> | undefined;
};

/** `cache-mb` → `cacheMb`: commander's attribute name for `--cache-mb`. */
export function camelName(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

const NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/**
 * Declares a service's options once; flags, variables and YAML keys all
 * come from it. Checked here so a bad declaration fails at start-up, in
 * every test, rather than when someone first sets the option.
 */
export function defineOptions<const T extends OptionTable>(table: T): T {
  const envs = new Set<string>();
  for (const [name, d] of Object.entries(table)) {
    if (!NAME.test(name)) throw new TypeError(`option name ${JSON.stringify(name)} is not kebab-case`);
    if (RESERVED_NAMES.has(name)) throw new TypeError(`option name ${name} is reserved`);
    if (d.env !== undefined) {
      if (envs.has(d.env)) throw new TypeError(`two options read $${d.env}`);
      envs.add(d.env);
    }
  }
  return table;
}
