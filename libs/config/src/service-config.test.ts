import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defineOptions, type ConfigValues, type KindTypes, type OptionKind, type OptionTable } from './declare';
import { ConfigError } from './problem';
import { ServiceConfig, type LoadInput } from './service-config';
import { effectiveConfig, renderYaml, shadowedText } from './render';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-config-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let fileSeq = 0;
function file(text: string | Buffer, name = `c${++fileSeq}.yaml`): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

const TABLE = defineOptions({
  listen: { kind: 'string', help: 'address', env: 'T_LISTEN', default: '127.0.0.1:7400', check: (v) => (v.includes(':') ? undefined : 'expected HOST:PORT') },
  store: { kind: 'path', help: 'store', env: 'T_STORE' },
  'cache-mb': { kind: 'positive-int', help: 'cache', default: 256 },
  prefetch: { kind: 'non-negative-int', help: 'entries', default: 10 },
  'metrics-port': { kind: 'port', help: 'metrics' },
  verbose: { kind: 'boolean', help: 'chatty', env: 'T_VERBOSE', default: false },
  resolver: { kind: 'string-list', help: 'addresses', split: ',', env: 'T_RESOLVER', default: ['a:1'] },
  mount: { kind: 'string-list', help: 'mounts', check: (l) => l.filter((m) => !m.includes(':')).map((m) => `bad mount ${m}`) },
  level: { kind: 'string', help: 'log level', choices: ['info', 'debug'], default: 'info' },
});
const config = new ServiceConfig(TABLE, 'T_CONFIG');

function load(input: Partial<LoadInput> = {}): ReturnType<typeof config.load> {
  return config.load({ flags: {}, env: {}, cwd: dir, ...input });
}

/** The problem lines of a load that must fail. */
function problems(input: Partial<LoadInput>): string[] {
  try {
    load(input);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.lines;
  }
  assert.fail('expected a ConfigError');
}

/** A valid value of each kind, written the way the file holds it, different from every default above. */
const SAMPLE: Record<OptionKind, string> = {
  string: 'h:9',
  path: '/srv/x',
  'positive-int': '7',
  'non-negative-int': '0',
  port: '9100',
  boolean: 'true',
  'string-list': '[x:1, y:2]',
};

describe('ServiceConfig.load', () => {
  test('defaults, with their origin', () => {
    const c = load();
    assert.deepEqual(c.values, { listen: '127.0.0.1:7400', store: undefined, cacheMb: 256, prefetch: 10, metricsPort: undefined, verbose: false, resolver: ['a:1'], mount: undefined, level: 'info' });
    assert.deepEqual(c.origins.listen, { source: 'default' });
    assert.equal(c.origins.store, undefined);
    assert.equal(c.file, undefined);
  });

  test('flag beats variable beats file beats default', () => {
    const f = file('listen: file:1\ncache-mb: 3\nverbose: true\nresolver: [f:1, g:2]\n');
    const c = load({ flags: { config: f, listen: 'flag:1' }, env: { T_LISTEN: 'env:1', T_VERBOSE: 'no' } });
    assert.equal(c.values.listen, 'flag:1');
    assert.deepEqual(c.origins.listen, { source: 'flag', where: '--listen' });
    assert.equal(c.values.verbose, false);
    assert.deepEqual(c.origins.verbose, { source: 'env', where: '$T_VERBOSE' });
    assert.equal(c.values.cacheMb, 3);
    assert.deepEqual(c.origins['cache-mb'], { source: 'file', where: `${f}:2` });
    assert.deepEqual(c.values.resolver, ['f:1', 'g:2']);
    assert.deepEqual(c.origins.prefetch, { source: 'default' });
    assert.deepEqual(c.fileOrigin, { source: 'flag', where: '--config' });
  });

  test('the file comes from --config, else from its variable; --config wins', () => {
    const a = file('cache-mb: 1\n');
    const b = file('cache-mb: 2\n');
    assert.equal(load({ env: { T_CONFIG: a } }).values.cacheMb, 1);
    assert.deepEqual(load({ env: { T_CONFIG: a } }).fileOrigin, { source: 'env', where: '$T_CONFIG' });
    assert.equal(load({ flags: { config: b }, env: { T_CONFIG: a } }).values.cacheMb, 2);
  });

  test('every declared option can be set in the file', () => {
    for (const [name, decl] of Object.entries(TABLE as OptionTable)) {
      const sample = decl.kind === 'string' && decl.choices ? decl.choices[1] : SAMPLE[decl.kind];
      const f = file(`${name}: ${sample}\n`);
      const c = load({ flags: { config: f } });
      assert.deepEqual(c.origins[name], { source: 'file', where: `${f}:1` }, name);
    }
  });

  test('a variable set to the empty string counts as unset', () => {
    const c = load({ env: { T_LISTEN: '', T_STORE: '' } });
    assert.equal(c.origins.listen.source, 'default');
    assert.equal(c.values.store, undefined);
  });

  test('lists: flags repeat and split, variables split, a YAML list is taken as written', () => {
    assert.deepEqual(load({ flags: { resolver: ['a:1,b:2', 'c:3'] } }).values.resolver, ['a:1', 'b:2', 'c:3']);
    assert.deepEqual(load({ env: { T_RESOLVER: 'a:1, b:2' } }).values.resolver, ['a:1', 'b:2']);
    assert.deepEqual(load({ flags: { config: file('resolver: a:1,b:2\n') } }).values.resolver, ['a:1', 'b:2']);
    assert.deepEqual(load({ flags: { config: file('mount: ["l:/a,b"]\n') } }).values.mount, ['l:/a,b']);
    assert.deepEqual(load({ flags: { config: file('mount: l:/x\n') } }).values.mount, ['l:/x']);
    assert.match(problems({ flags: { config: file('mount: [l:/x, 3]\n') } })[0], /:1: mount: item 2: expected a string, got 3$/);
    assert.match(problems({ flags: { config: file('mount: []\n') } })[0], /mount: expected a list of strings, got an empty value/);
  });

  test('paths: from the file relative to its directory, otherwise to the working directory', () => {
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    const f = file('store: ./data\n', 'sub/paths.yaml');
    assert.equal(load({ flags: { config: f } }).values.store, path.join(dir, 'sub/data'));
    assert.equal(load({ flags: { store: 'data' } }).values.store, path.join(dir, 'data'));
    assert.equal(load({ env: { T_STORE: '/abs' } }).values.store, '/abs');
  });

  test('wrong types name the file, the line and the key', () => {
    const f = file('listen: 127.0.0.1:1\n\ncache-mb: lots\nprefetch: -1\nmetrics-port: 70000\nverbose: maybe\nlevel: loud\nlisten2: x\n');
    assert.deepEqual(problems({ flags: { config: f } }), [
      `${f}:3: cache-mb: expected a positive integer, got "lots"`,
      `${f}:4: prefetch: expected a non-negative integer, got -1`,
      `${f}:5: metrics-port: port 70000 is out of range (1-65535)`,
      `${f}:6: verbose: expected true or false, got "maybe"`,
      `${f}:7: level: expected one of info, debug, got "loud"`,
      `${f}:8: unknown key "listen2" (did you mean listen?)`,
    ]);
    assert.deepEqual(problems({ flags: { config: file('cache-mb: 1.5\nlisten: 7400\nstore:\n') } }).map((l) => l.replace(/^.*?:\d+: /, '')), [
      'cache-mb: expected a positive integer, got 1.5',
      'listen: expected a string, got 7400 (quote it)',
      'store: expected a path, got no value (leave the key out for the default)',
    ]);
    assert.match(problems({ flags: { config: file('cache-mb: {a: 1}\n') } })[0], /cache-mb: expected a positive integer, got a mapping$/);
  });

  test('flags and variables are checked the same way', () => {
    assert.deepEqual(problems({ flags: { cacheMb: 'lots', listen: 'nocolon' }, env: { T_VERBOSE: 'maybe' } }), [
      '--listen: expected HOST:PORT',
      '--cache-mb: expected a positive integer, got "lots"',
      '$T_VERBOSE: expected true or false, got "maybe"',
    ]);
    assert.deepEqual(problems({ flags: { cacheMb: '0' } }), ['--cache-mb: expected a positive integer, got "0"']);
    assert.deepEqual(problems({ flags: { cacheMb: '1e3' } }), ['--cache-mb: expected a positive integer, got "1e3"']);
  });

  test('a value a higher source overrides is still checked; a check may report several problems', () => {
    const f = file('listen: nocolon\nmount: [ok:/x, bad1, bad2]\n');
    assert.deepEqual(problems({ flags: { config: f, listen: 'a:1' } }), [`${f}:1: listen: expected HOST:PORT`, `${f}:2: mount: bad mount bad1`, `${f}:2: mount: bad mount bad2`]);
  });

  test('a check is told where the value came from (a default may be created, a given directory must exist)', () => {
    const seen: string[] = [];
    const t = new ServiceConfig(defineOptions({ store: { kind: 'path', help: '', default: 'store', check: (_, source) => void seen.push(source) } }), 'X');
    t.load({ flags: {}, env: {} });
    t.load({ flags: { store: '/x' }, env: {} });
    assert.deepEqual(seen, ['default', 'flag']);
  });

  test('unknown keys, with a suggestion when one is close', () => {
    const f = file('cacheMb: 1\nlisten: a:1\nzzz: 2\nconfig: other.yaml\n');
    assert.deepEqual(problems({ flags: { config: f } }), [
      `${f}:1: unknown key "cacheMb" (did you mean cache-mb?)`,
      `${f}:3: unknown key "zzz"`,
      `${f}:4: unknown key "config" (a file cannot name another file)`,
    ]);
  });

  test('syntax errors, a file that is not a mapping, keys that are not names', () => {
    const syntax = file('listen: a:1\nresolver: [x\n');
    const lines = problems({ flags: { config: syntax } });
    assert.equal(lines.length, 1);
    assert.match(lines[0], new RegExp(`^${syntax}:3: YAML: `));
    assert.deepEqual(problems({ flags: { config: file('listen: a:1\nlisten: b:2\n') } }).map((l) => l.replace(/^.*?:(\d+): /, '$1: ')), ['2: YAML: Map keys must be unique']);
    assert.match(problems({ flags: { config: file('- listen\n') } })[0], /:1: expected a mapping of option names to values .*, got a list$/);
    assert.match(problems({ flags: { config: file('just words\n') } })[0], /:1: expected a mapping .*, got "just words"$/);
    assert.match(problems({ flags: { config: file('? [a]\n: 1\n') } })[0], /:1: keys are option names, got a list$/);
    assert.match(problems({ flags: { config: file('a: 1\n---\nb: 2\n') } })[0], /YAML: .*multiple documents/);
  });

  test('an empty file or one of only comments sets nothing', () => {
    assert.equal(load({ flags: { config: file('') } }).origins.listen.source, 'default');
    assert.equal(load({ flags: { config: file('# nothing yet\n') } }).origins.listen.source, 'default');
  });

  test('anchors and aliases resolve; an unknown alias is a problem', () => {
    const c = load({ flags: { config: file('listen: &l h:1\nresolver: [*l]\n') } });
    assert.deepEqual(c.values.resolver, ['h:1']);
    assert.ok(problems({ flags: { config: file('listen: *nope\n') } }).some((l) => /nope/.test(l)));
  });

  test('files that cannot be configuration', () => {
    assert.deepEqual(problems({ flags: { config: 'missing.yaml' } }), ['missing.yaml: cannot read it: no such file or directory (ENOENT)']);
    assert.deepEqual(problems({ flags: { config: dir } }), [`${dir}: is a directory, not a YAML file`]);
    assert.deepEqual(problems({ flags: { config: file(Buffer.from([0x6c, 0x3a, 0x20, 0xff, 0x0a])) } }).map((l) => l.replace(/^.*: is/, 'is')), ['is not UTF-8 text']);
    assert.match(problems({ flags: { config: file(`# ${'x'.repeat(1 << 20)}\n`) } })[0], /bytes; a configuration file is at most 1048576$/);
    assert.match(problems({ flags: { config: '/dev/null' } })[0], /is not a regular file$/);
  });

  test('problems come in reading order: flags and variables, then the file from the top', () => {
    const f = file('zzz: 1\nlevel: loud\ncache-mb: x\n');
    assert.deepEqual(
      problems({ flags: { config: f, prefetch: 'x' } }).map((l) => l.split(':')[0] === f ? l.slice(f.length) : l),
      ['--prefetch: expected a non-negative integer, got "x"', ':1: unknown key "zzz"', ':2: level: expected one of info, debug, got "loud"', ':3: cache-mb: expected a positive integer, got "x"'],
    );
  });

  test('ConfigError is a StrataError (EINVAL) whose message lists every problem', () => {
    try {
      load({ flags: { cacheMb: 'x', listen: 'y' } });
      assert.fail('no error');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.errnoName, 'EINVAL');
      assert.equal(err.problems.length, 2);
      assert.match(err.message, /--listen.*; --cache-mb/);
    }
  });
});

describe('ServiceConfig.flagSpecs', () => {
  test('one flag per option (and --config), named like the YAML key', () => {
    const specs = config.flagSpecs();
    const longNames = specs.map((s) => /^--([a-z0-9-]+)/.exec(s.flags)?.[1]);
    for (const name of Object.keys(TABLE)) assert.ok(longNames.includes(name), name);
    assert.ok(longNames.includes('config'));
    assert.ok(longNames.includes('no-verbose'));
    const listen = specs.find((s) => s.flags.startsWith('--listen '));
    assert.equal(listen?.description, 'address ($T_LISTEN; default 127.0.0.1:7400)');
    const mount = specs.find((s) => s.flags.startsWith('--mount '));
    assert.deepEqual(mount?.collect?.('b', mount.collect('a', undefined)), ['a', 'b']);
    assert.equal(specs.find((s) => s.flags.startsWith('--resolver '))?.description, 'addresses ($T_RESOLVER; default a:1); repeatable');
  });
});

describe('defineOptions', () => {
  test('rejects names that cannot be both a flag and a key, reserved names and shared variables', () => {
    assert.throws(() => defineOptions({ cacheMb: { kind: 'string', help: '' } }), /kebab-case/);
    assert.throws(() => defineOptions({ config: { kind: 'string', help: '' } }), /reserved/);
    assert.throws(() => defineOptions({ a: { kind: 'string', help: '', env: 'X' }, b: { kind: 'string', help: '', env: 'X' } }), /\$X/);
  });

  test('the loaded values are typed from the declaration', () => {
    const v: ConfigValues<typeof TABLE> = load().values;
    const port: number | undefined = v.metricsPort;
    const mb: number = v.cacheMb;
    const list: KindTypes['string-list'] = v.resolver;
    assert.deepEqual([port, mb, list], [undefined, 256, ['a:1']]);
  });
});

describe('shadowed values', () => {
  test('a value the file gives and a variable or a flag beats is listed with where each came from; --check-config shows it', () => {
    const f = file('listen: 10.0.0.1:7400\nstore: /srv/file\ncache-mb: 64\n');
    const c = load({ flags: { config: f, store: '/srv/flag' }, env: { T_LISTEN: '0.0.0.0:7400', T_STORE: '/srv/env' } });
    assert.equal(c.values.listen, '0.0.0.0:7400');
    assert.equal(c.values.store, '/srv/flag');
    assert.deepEqual(c.shadowed, [
      { option: 'listen', by: { source: 'env', where: '$T_LISTEN' }, over: [{ source: 'file', where: `${f}:1` }] },
      {
        option: 'store',
        by: { source: 'flag', where: '--store' },
        over: [
          { source: 'env', where: '$T_STORE' },
          { source: 'file', where: `${f}:2` },
        ],
      },
    ]);
    assert.deepEqual(shadowedText(c), [`listen: $T_LISTEN overrides ${f}:1`, `store: --store overrides $T_STORE, ${f}:2`]);
    assert.match(renderYaml(TABLE, c, 't'), new RegExp(`^listen: 0\\.0\\.0\\.0:7400 # \\$T_LISTEN \\(overrides ${f.replace(/[.]/g, '\\.')}:1\\)$`, 'm'));
    assert.deepEqual(effectiveConfig(TABLE, c).options['cache-mb'], { value: 64, source: 'file', where: `${f}:3` });
    assert.deepEqual(effectiveConfig(TABLE, c).shadowed, shadowedText(c));
    // Defaults are not shadowed by anything: nobody gave them.
    assert.deepEqual(load({ flags: { listen: 'h:1' } }).shadowed, []);
  });
});
