import { stringify } from 'yaml';
import { camelName, type KindTypes, type OptionKind, type OptionTable } from './declare';
import type { LoadedConfig, Origin } from './service-config';

type AnyValue = KindTypes[OptionKind];

function originText(o: Origin): string {
  return o.source === 'default' ? 'default' : (o.where ?? o.source);
}

/** Where else an option was given, beaten by where its value came from. */
function shadowsOf<T extends OptionTable>(loaded: LoadedConfig<T>, name: string): string[] {
  return (loaded.shadowed ?? []).find((s) => s.option === name)?.over.map(originText) ?? [];
}

/** One line per shadowed value, for the start-up warning: `listen: $STRATA_LISTEN overrides resolver.yaml:2`. */
export function shadowedText<T extends OptionTable>(loaded: LoadedConfig<T>): string[] {
  return (loaded.shadowed ?? []).map((s) => `${s.option}: ${originText(s.by)} overrides ${s.over.map(originText).join(', ')}`);
}

function shownValue<T extends OptionTable>(table: T, loaded: LoadedConfig<T>, name: string): AnyValue | undefined {
  const value = (loaded.values as Record<string, AnyValue | undefined>)[camelName(name)];
  if (value === undefined) return undefined;
  const show = table[name].show as ((v: AnyValue) => AnyValue) | undefined;
  return show ? show(value) : value;
}

/**
 * The effective configuration as a YAML file, each line commented with
 * where its value came from; options nobody set are commented out. Without
 * redacted secrets it reads back as the same configuration.
 */
export function renderYaml<T extends OptionTable>(table: T, loaded: LoadedConfig<T>, title: string): string {
  const lines = [`# ${title}`, loaded.file ? `# config file: ${loaded.file} (from ${originText(loaded.fileOrigin!)})` : '# config file: none'];
  for (const name of Object.keys(table)) {
    const value = shownValue(table, loaded, name);
    const origin = loaded.origins[name];
    if (value === undefined || !origin) {
      lines.push(`# ${name}: not set`);
      continue;
    }
    const shadows = shadowsOf(loaded, name);
    const note = shadows.length > 0 ? ` (overrides ${shadows.join(', ')})` : '';
    lines.push(`${name}: ${stringify(value, { collectionStyle: 'flow', lineWidth: 0 }).trimEnd()} # ${originText(origin)}${note}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface EffectiveOption {
  /** null when nobody set it and it has no default. */
  value: AnyValue | null;
  source: Origin['source'] | 'unset';
  /** `--listen`, `$STRATA_LISTEN`, `resolver.yaml:3`. */
  where?: string;
}

export interface EffectiveConfig {
  configFile: string | null;
  options: Record<string, EffectiveOption>;
  /** Values given but beaten by a flag or a variable: `listen: $STRATA_LISTEN overrides resolver.yaml:2`. */
  shadowed: string[];
}

/** The same as one JSON document, for scripts. */
export function effectiveConfig<T extends OptionTable>(table: T, loaded: LoadedConfig<T>): EffectiveConfig {
  const options: Record<string, EffectiveOption> = {};
  for (const name of Object.keys(table)) {
    const value = shownValue(table, loaded, name);
    const origin = loaded.origins[name];
    options[name] =
      value === undefined || !origin ? { value: null, source: 'unset' } : { value, source: origin.source, ...(origin.where ? { where: origin.where } : {}) };
  }
  return { configFile: loaded.file ?? null, options, shadowed: shadowedText(loaded) };
}
