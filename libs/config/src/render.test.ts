import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defineOptions } from './declare';
import { effectiveConfig, renderYaml } from './render';
import { ServiceConfig } from './service-config';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-config-render-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const TABLE = defineOptions({
  listen: { kind: 'string', help: '', env: 'R_LISTEN', default: '127.0.0.1:7400' },
  redis: { kind: 'string', help: '', show: (u) => u.replace(/:[^:@/]+@/, ':***@') },
  'cache-mb': { kind: 'positive-int', help: '', default: 256 },
  mount: { kind: 'string-list', help: '' },
  note: { kind: 'string', help: '' },
});
const config = new ServiceConfig(TABLE, 'R_CONFIG');

describe('renderYaml', () => {
  test('every option, where it came from, unset ones commented out', () => {
    const f = path.join(dir, 'r.yaml');
    fs.writeFileSync(f, 'cache-mb: 512\nmount: ["l:/a b", "m:/c"]\n');
    const loaded = config.load({ flags: { config: f, redis: 'redis://u:secret@h:1' }, env: { R_LISTEN: '0.0.0.0:7400' }, cwd: dir });
    assert.equal(
      renderYaml(TABLE, loaded, 'x: valid'),
      [
        '# x: valid',
        `# config file: ${f} (from --config)`,
        'listen: 0.0.0.0:7400 # $R_LISTEN',
        'redis: redis://u:***@h:1 # --redis',
        'cache-mb: 512 # ' + `${f}:1`,
        `mount: [ l:/a b, m:/c ] # ${f}:2`,
        '# note: not set',
        '',
      ].join('\n'),
    );
  });

  test('the output reads back as the same configuration', () => {
    const f = path.join(dir, 'in.yaml');
    fs.writeFileSync(f, 'listen: "#weird: value"\nnote: "yes"\nmount: [a:/x]\n');
    const first = config.load({ flags: { config: f }, env: {}, cwd: dir });
    const again = path.join(dir, 'again.yaml');
    fs.writeFileSync(again, renderYaml(TABLE, first, 'first'));
    assert.deepEqual(config.load({ flags: { config: again }, env: {}, cwd: dir }).values, first.values);
  });
});

describe('effectiveConfig', () => {
  test('values with source and where; unset is null', () => {
    const loaded = config.load({ flags: { cacheMb: '3' }, env: {}, cwd: dir });
    assert.deepEqual(effectiveConfig(TABLE, loaded), {
      configFile: null,
      options: {
        listen: { value: '127.0.0.1:7400', source: 'default' },
        redis: { value: null, source: 'unset' },
        'cache-mb': { value: 3, source: 'flag', where: '--cache-mb' },
        mount: { value: null, source: 'unset' },
        note: { value: null, source: 'unset' },
      },
      shadowed: [],
    });
  });
});
