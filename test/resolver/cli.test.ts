import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startResolver, strata, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';

let fx: StoreFixture;
let resolver: ResolverProcess;
let env: Record<string, string>;

before(async () => {
  fx = await makeStore([
    {
      entries: [
        { type: 'file', path: '/etc/hostname', content: 'base\n' },
        { type: 'file', path: '/etc/old', content: 'old\n' },
        { type: 'symlink', path: '/etc/link', target: 'hostname' },
      ],
    },
    { entries: [{ type: 'file', path: '/etc/hostname', content: 'snapshot\n' }, { type: 'whiteout', path: '/etc/old' }] },
  ]);
  fs.mkdirSync(path.join(fx.store, 'extra/root/sub'), { recursive: true });
  fs.writeFileSync(path.join(fx.store, 'extra/root/sub/new.txt'), 'new\n');
  resolver = await startResolver({ store: fx.store });
  env = { STRATA_RESOLVER: resolver.address };
});

after(async () => {
  await resolver?.stop();
  fx?.cleanup();
});

function json<T>(args: string[]): T {
  const r = strata([...args, '--json'], env);
  assert.equal(r.status, 0, `strata ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

interface LayerJson {
  layerId: number;
  baseLayerId: number;
  name: string;
  layerType: string;
  mountOptions: string[];
  generation: number;
  filesystemPath: string;
  chain?: LayerJson[];
}

describe('strata CLI against a resolver', () => {
  test('layer create, list, get, update, delete with --json', () => {
    const created = json<LayerJson>(['layer', 'create', '--source', 'dir:extra', '--path', '/root', '--base', 'l1', '--type', 'overlay', '--name', 'extra', '--option', 'no-exec']);
    assert.equal(typeof created.layerId, 'number');
    assert.deepEqual([created.baseLayerId, created.layerType, created.filesystemPath, created.mountOptions], [fx.layers[1].layerId, 'overlay', '/root', ['read-only', 'no-exec']]);
    const list = json<{ layers: LayerJson[] }>(['layer', 'list']);
    assert.deepEqual(list.layers.map((l) => l.name), ['l0', 'l1', 'extra']);
    const got = json<LayerJson>(['layer', 'get', 'extra']);
    assert.deepEqual(got.chain?.map((l) => l.name), ['l1', 'l0']);
    const updated = json<LayerJson>(['layer', 'update', String(created.layerId), '--name', 'extra2', '--expect-generation', '1']);
    assert.deepEqual([updated.name, updated.generation], ['extra2', 2]);
    const stale = strata(['layer', 'update', 'extra2', '--name', 'x', '--expect-generation', '1'], env);
    assert.notEqual(stale.status, 0);
    assert.match(stale.stderr, /^strata: .*generation/);
    assert.equal(stale.stderr.trim().split('\n').length, 1, 'one line on stderr');
    const text = strata(['layer', 'list'], env);
    assert.match(text.stdout, /^ID\s+BASE\s+TYPE/);
    assert.match(text.stdout, /extra2/);
    json(['layer', 'delete', 'extra2']);
    assert.notEqual(strata(['layer', 'get', 'extra2'], env).status, 0);
  });

  test('stat, ls, cat, readlink and diff read the merged view', () => {
    const st = json<{ attr: { type: string; size: number } }>(['stat', 'l1', '/etc/hostname']);
    assert.deepEqual([st.attr.type, st.attr.size], ['file', 9]);
    const ls = json<{ entries: { name: string }[] }>(['ls', 'l1', '/etc']);
    assert.deepEqual(ls.entries.map((e) => e.name), ['hostname', 'link']);
    assert.equal(strata(['cat', 'l1', '/etc/hostname'], env).stdout, 'snapshot\n');
    assert.equal(strata(['cat', 'l0', '/etc/hostname'], env).stdout, 'base\n');
    assert.equal(Buffer.from(json<{ contentBase64: string }>(['cat', 'l1', '/etc/hostname']).contentBase64, 'base64').toString(), 'snapshot\n');
    assert.equal(strata(['readlink', 'l1', '/etc/link'], env).stdout, 'hostname\n');
    assert.equal(json<{ target: string }>(['readlink', 'l1', '/etc/link']).target, 'hostname');
    assert.equal(strata(['diff', 'l0', 'l1'], env).stdout, 'M /etc/hostname\nD /etc/old\n');
    const d = json<{ changes: { path: string; kind: string; before: object | null; after: object | null }[] }>(['diff', 'l0', 'l1', '--path', '/etc']);
    assert.deepEqual(d.changes.map((c) => [c.path, c.kind, c.before !== null, c.after !== null]), [
      ['/etc/hostname', 'modified', true, true],
      ['/etc/old', 'deleted', true, false],
    ]);
    assert.match(strata(['ls', 'l1', '/etc'], env).stdout, /^-rw-r--r-- .* hostname\nlrwxrwxrwx .* link\n$/);
    assert.match(strata(['stat', 'l1', '/etc/link'], env).stdout, /File: \/etc\/link -> hostname/);
  });

  test('errors are one clear line on stderr and a non-zero exit', () => {
    for (const args of [['stat', 'l1', '/nope'], ['cat', 'l1', '/etc'], ['stat', 'nolayer', '/'], ['layer', 'create', '--source', 'dir:../outside']]) {
      const r = strata(args, env);
      assert.notEqual(r.status, 0, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^strata: /);
    }
    const down = strata(['stat', 'l1', '/'], { STRATA_RESOLVER: '127.0.0.1:1' });
    assert.notEqual(down.status, 0);
    assert.match(down.stderr, /^strata: /);
    assert.equal(strata(['layer', 'create', '--source', 'dir:x', '--type', 'weird'], env).status, 1);
  });
});
