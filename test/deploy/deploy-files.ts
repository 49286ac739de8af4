import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO, STRATA_BIN } from '@strata/harness';

/** What the tests under test/deploy read: the files in deploy/ and the commands they name. */

export const DEPLOY = path.join(REPO, 'deploy');
export const INSTALL_SH = path.join(DEPLOY, 'install.sh');
export const UNITS = ['strata-resolver.service', 'strata-agent.service'] as const;
export type UnitName = (typeof UNITS)[number];

// ---- systemd unit files ----

export interface Assignment {
  section: string;
  key: string;
  value: string;
}

/** A unit file as systemd reads it: sections, `Key=value` lines, `#`/`;` comments, `\` continuations. */
export function parseUnit(text: string): Assignment[] {
  const out: Assignment[] = [];
  let section = '';
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i].trim();
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i].trim()}`;
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`not a Key=value line: ${line}`);
    out.push({ section, key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() });
  }
  return out;
}

export function readUnit(file: string): Assignment[] {
  return parseUnit(fs.readFileSync(file, 'utf8'));
}

/** Every value given to `key` in `section`, in order, after the last empty assignment (which resets a list). */
export function values(unit: readonly Assignment[], section: string, key: string): string[] {
  const all = unit.filter((a) => a.section === section && a.key === key).map((a) => a.value);
  const reset = all.lastIndexOf('');
  return all.slice(reset + 1);
}

/** The one value of a setting, or undefined; a setting given twice is a mistake in these units. */
export function single(unit: readonly Assignment[], section: string, key: string): string | undefined {
  const v = values(unit, section, key);
  if (v.length > 1) throw new Error(`${section}.${key} is set ${v.length} times`);
  return v[0];
}

/** A space-separated list setting (capabilities, address families), merged over its lines. */
export function words(unit: readonly Assignment[], section: string, key: string): string[] {
  return values(unit, section, key).flatMap((v) => v.split(/\s+/).filter(Boolean));
}

/** ExecStart split into words, its prefix characters (`-`, `@`, `+`, `!`, `:`) removed. */
export function execStart(unit: readonly Assignment[]): string[] {
  const v = single(unit, 'Service', 'ExecStart');
  if (v === undefined) throw new Error('no ExecStart');
  if (/["'$%]/.test(v)) throw new Error(`ExecStart with quotes or expansions is not understood here: ${v}`);
  const argv = v.split(/\s+/);
  argv[0] = argv[0].replace(/^[-@+!:]+/, '');
  return argv;
}

/** `Environment=A=1 B=2` lines as name → value. */
export function environment(unit: readonly Assignment[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const v of values(unit, 'Service', 'Environment')) {
    for (const pair of v.split(/\s+/).filter(Boolean)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new Error(`not NAME=value: ${pair}`);
      env.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  }
  return env;
}

// ---- the strata command line ----

export interface Flag {
  name: string;
  takesValue: boolean;
}

const helpCache = new Map<string, Map<string, Flag>>();

/** The long flags `strata <words> --help` lists (commander prints each option at an indent of two). */
export function helpFlags(commandWords: readonly string[]): Map<string, Flag> {
  const key = commandWords.join(' ');
  const cached = helpCache.get(key);
  if (cached) return cached;
  const r = spawnSync(process.execPath, [STRATA_BIN, ...commandWords, '--help'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`strata ${key} --help exited ${String(r.status)}: ${r.stderr}`);
  const flags = new Map<string, Flag>();
  for (const line of r.stdout.split('\n')) {
    const m = /^ {2}(?:-\w, )?(--[a-z][a-z0-9-]*)( <[^>]+>| \[[^\]]+\])?/.exec(line);
    if (m) flags.set(m[1], { name: m[1], takesValue: m[2] !== undefined });
  }
  if (!flags.has('--help')) throw new Error(`could not read the options of strata ${key} --help:\n${r.stdout}`);
  helpCache.set(key, flags);
  return flags;
}

const SERVICES = new Set(['resolver', 'agent']);

/**
 * What is wrong with the arguments after the strata executable: a flag that
 * `--help` does not list, a flag without its value, a stray word. Services
 * take no positional arguments; a client command is checked against its own
 * help and the global options.
 */
export function commandLineProblems(args: readonly string[]): string[] {
  const problems: string[] = [];
  const first = args.findIndex((a) => a.startsWith('-'));
  const commandWords = first === -1 ? [...args] : args.slice(0, first);
  if (commandWords.length === 0) return [`no role or command in ${JSON.stringify(args)}`];
  const flags = new Map(helpFlags(commandWords));
  if (!SERVICES.has(commandWords[0])) for (const [k, v] of helpFlags([])) if (!flags.has(k)) flags.set(k, v);
  const rest = first === -1 ? [] : args.slice(first);
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith('--')) {
      problems.push(`stray argument ${JSON.stringify(a)}`);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq === -1 ? a : a.slice(0, eq);
    const flag = flags.get(name);
    if (!flag) {
      problems.push(`strata ${commandWords.join(' ')} has no ${name}`);
      continue;
    }
    if (flag.takesValue && eq === -1) {
      if (i + 1 >= rest.length || rest[i + 1].startsWith('--')) problems.push(`${name} needs a value`);
      else i++;
    } else if (!flag.takesValue && eq !== -1) {
      problems.push(`${name} takes no value`);
    }
  }
  return problems;
}

/** The value of `--name V` or `--name=V` in an argument list. */
export function flagValue(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
  }
  return undefined;
}

// ---- environment variables the code reads ----

function sourcesUnder(dir: string, out: string[]): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'gen' && e.name !== 'node_modules') sourcesUnder(p, out);
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) {
      out.push(p);
    }
  }
  return out;
}

/**
 * Every variable the services and the libraries they run read:
 * `process.env.X`, `process.env['X']`, and options declared with `env: 'X'`.
 */
export function envVarsRead(): Set<string> {
  const files: string[] = [];
  for (const top of ['services', 'libs']) {
    for (const pkg of fs.readdirSync(path.join(REPO, top))) {
      const src = path.join(REPO, top, pkg, 'src');
      if (fs.existsSync(src)) sourcesUnder(src, files);
    }
  }
  const names = new Set<string>();
  const patterns = [/process\.env\.([A-Z_][A-Z0-9_]*)/g, /process\.env\[\s*['"]([A-Z_][A-Z0-9_]*)['"]\s*\]/g, /\benv:\s*['"]([A-Z_][A-Z0-9_]*)['"]/g];
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    for (const re of patterns) for (const m of text.matchAll(re)) names.add(m[1]);
  }
  return names;
}

// ---- Kubernetes manifests ----

export const K8S = path.join(DEPLOY, 'k8s');

export interface Manifest {
  file: string;
  doc: K8sObject;
}

/** The parts of Kubernetes objects these tests look at; everything else is opaque. */
export interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  securityContext?: { privileged?: boolean; runAsUser?: number; capabilities?: { add?: string[]; drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
}

export interface Probe {
  grpc?: { port: number; service?: string };
  tcpSocket?: { port: number | string };
  httpGet?: { port: number | string; path?: string };
  exec?: { command: string[] };
}

export interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string };
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: object;
}

export interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: { containers: Container[]; volumes?: Volume[]; terminationGracePeriodSeconds?: number };
}

/** Every YAML document of a text, in order; a parse error or warning throws, naming `what`. */
export function parseYaml(text: string, what: string): unknown[] {
  const docs = parseAllDocuments(text, { prettyErrors: true, strict: true, uniqueKeys: true });
  for (const d of docs) {
    const problems = [...d.errors, ...d.warnings];
    if (problems.length > 0) throw new Error(`${what}: ${problems.map((e) => e.message).join('; ')}`);
  }
  return docs.map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined);
}

export function loadYaml(file: string): unknown[] {
  return parseYaml(fs.readFileSync(file, 'utf8'), file);
}

export function k8sYamlFiles(): string[] {
  return fs
    .readdirSync(K8S)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .map((f) => path.join(K8S, f));
}

/** The objects of the manifests (kustomization.yaml is not one). */
export function manifests(): Manifest[] {
  return k8sYamlFiles()
    .filter((f) => path.basename(f) !== 'kustomization.yaml')
    .flatMap((file) => loadYaml(file).map((doc) => ({ file, doc: doc as K8sObject })));
}

/** The pod template of a workload (Deployment, StatefulSet, DaemonSet), else undefined. */
export function podTemplate(o: K8sObject): PodTemplate | undefined {
  if (!['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind ?? '')) return undefined;
  return (o.spec as { template: PodTemplate }).template;
}

export function find(all: readonly Manifest[], kind: string, name: string): K8sObject {
  const m = all.find((x) => x.doc.kind === kind && x.doc.metadata?.name === name);
  if (!m) throw new Error(`no ${kind} ${name} in deploy/k8s`);
  return m.doc;
}

// ---- deploy/Containerfile ----

export interface Instruction {
  op: string;
  rest: string;
}

/** The instructions of a Containerfile, continuation lines joined, comments dropped. */
export function containerfile(): Instruction[] {
  const text = fs.readFileSync(path.join(DEPLOY, 'Containerfile'), 'utf8').replace(/\\\n/g, ' ');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\S+)\s+(.*)$/.exec(l);
      if (!m) throw new Error(`not an instruction: ${l}`);
      return { op: m[1].toUpperCase(), rest: m[2] };
    });
}

/** The image's ENTRYPOINT, in exec form. */
export function entrypoint(): string[] {
  const e = containerfile().filter((i) => i.op === 'ENTRYPOINT');
  if (e.length !== 1) throw new Error(`expected one ENTRYPOINT, found ${e.length}`);
  return JSON.parse(e[0].rest) as string[];
}

// ---- docs/deployment.md ----

export const DEPLOYMENT_MD = path.join(REPO, 'docs/deployment.md');

/** The capability table of docs/deployment.md: unit file name → capabilities it lists. */
export function documentedCapabilities(): Map<string, Set<string>> {
  const table = new Map<string, Set<string>>();
  for (const line of fs.readFileSync(DEPLOYMENT_MD, 'utf8').split('\n')) {
    const m = /^\|\s*`?(strata-[a-z]+\.service)`?\s*\|\s*`(CAP_[A-Z_]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (!m) continue;
    if (m[3].trim() === '') throw new Error(`${m[2]} of ${m[1]} has no reason in docs/deployment.md`);
    if (!table.has(m[1])) table.set(m[1], new Set());
    table.get(m[1])!.add(m[2]);
  }
  return table;
}

/** install.sh's default --prefix. */
export function defaultPrefix(): string {
  const m = /^prefix=(\/\S+)$/m.exec(fs.readFileSync(INSTALL_SH, 'utf8'));
  if (!m) throw new Error('install.sh sets no default prefix');
  return m[1];
}

// ---- the configuration files the units and manifests run with ----

export type Role = 'resolver' | 'agent';

/** The shipped YAML configuration of a role: deploy/config/<role>.yaml (units) or deploy/k8s/config/<role>.yaml (manifests). */
export function configFile(role: Role, where: 'systemd' | 'k8s'): string {
  return where === 'systemd' ? path.join(DEPLOY, 'config', `${role}.yaml`) : path.join(K8S, 'config', `${role}.yaml`);
}

export function readConfig(role: Role, where: 'systemd' | 'k8s'): Record<string, unknown> {
  return loadYaml(configFile(role, where))[0] as Record<string, unknown>;
}

/** The value of a configuration key as a string (lists joined with commas), or undefined. */
export function configValue(config: Record<string, unknown>, key: string): string | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  return Array.isArray(v) ? v.map(String).join(',') : String(v);
}

/** `<bin> <role> --config <file>`: the file a command line names, or undefined when it names none (or more). */
export function configFlag(args: readonly string[]): string | undefined {
  return flagValue(args, '--config');
}

/** The shipped configuration with its host paths replaced (`from` → `to`, longest first), written to `dir`. */
export function rewrittenConfig(role: Role, where: 'systemd' | 'k8s', dir: string, replace: Record<string, string>): string {
  let text = fs.readFileSync(configFile(role, where), 'utf8');
  for (const from of Object.keys(replace).sort((a, b) => b.length - a.length)) text = text.replaceAll(from, replace[from]);
  const out = path.join(dir, `${role}-${where}.yaml`);
  fs.writeFileSync(out, text);
  return out;
}

export interface EffectiveConfig {
  configFile: string | null;
  options: Record<string, { value: unknown; source: string; where?: string }>;
  shadowed: string[];
}

/** `strata <role> --config FILE --check-config --json` with exactly this environment (plus PATH): exit status and the document. */
export function checkConfig(role: Role, file: string, env: Record<string, string> = {}): { status: number | null; stderr: string; doc?: EffectiveConfig } {
  const r = spawnSync(process.execPath, [STRATA_BIN, role, '--config', file, '--check-config', '--json'], {
    encoding: 'utf8',
    cwd: '/',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    timeout: 30_000,
  });
  return { status: r.status, stderr: r.stderr, ...(r.status === 0 ? { doc: JSON.parse(r.stdout) as EffectiveConfig } : {}) };
}
