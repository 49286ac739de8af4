import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { Catalog } from '@strata/layers';
import { startResolver, strata, waitFor, type ResolverProcess } from '@strata/harness';

/**
 * Issue 23 item 9: an image file under a sealed layer deleted or replaced.
 * Before, the replica holding it open served on and a restarted one said
 * ENOENT, neither logging. Now every replica answers the same — the new
 * file's content after a replacement, ESTALE naming the file after a
 * deletion — and the one that noticed says so at warn; `strata layer check`
 * tells which layers are broken.
 */

const haveMke2fs = spawnSync('mke2fs', ['-V'], { encoding: 'utf8' }).status === 0;
const skip = haveMke2fs ? false : 'needs mke2fs (e2fsprogs)';

/** An ext4 image (no partition table) holding /etc/hostname with this text. */
function ext4Image(file: string, hostname: string): void {
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-img-tree-'));
  try {
    fs.mkdirSync(path.join(tree, 'etc'));
    fs.writeFileSync(path.join(tree, 'etc/hostname'), hostname);
    const r = spawnSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', tree, file, '4M'], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`mke2fs: ${r.stderr}`);
  } finally {
    fs.rmSync(tree, { recursive: true, force: true });
  }
}

async function failure(p: Promise<unknown>): Promise<StrataError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StrataError, String(err));
    return err;
  }
  assert.fail('expected a failure');
}

describe('a sealed layer whose image file is replaced or deleted', { skip }, () => {
  let store: string;
  let r1: ResolverProcess;
  let r2: ResolverProcess;
  let c1: StrataClient;
  let c2: StrataClient;
  const image = (): string => path.join(store, 'images/vm.raw');

  before(async () => {
    store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-identity-'));
    fs.mkdirSync(path.join(store, 'images'));
    ext4Image(image(), 'one\n');
    ext4Image(path.join(store, 'images/other.raw'), 'other\n');
    const catalog = new Catalog(store);
    await catalog.init();
    await catalog.create({ source: 'raw:images/vm.raw', layerType: 'base', name: 'vm' });
    await catalog.create({ source: 'raw:images/other.raw', layerType: 'base', name: 'other' });
    r1 = await startResolver({ store });
    r2 = await startResolver({ store });
    c1 = new StrataClient({ resolver: r1.address, deadlineMs: 5000 });
    c2 = new StrataClient({ resolver: r2.address, deadlineMs: 5000 });
  });

  after(async () => {
    c1?.close();
    c2?.close();
    await r1?.stop();
    await r2?.stop();
    fs.rmSync(store, { recursive: true, force: true });
  });

  test('layer check: every layer fine', () => {
    const r = strata(['--resolver', r2.address, 'layer', 'check', '--json']);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const doc = JSON.parse(r.stdout) as { ok: boolean; layers: { name: string; ok: boolean; files: { file: string; state: string }[] }[] };
    assert.equal(doc.ok, true);
    assert.deepEqual(doc.layers.map((l) => [l.name, l.ok, l.files.map((f) => [f.file, f.state])]), [
      ['vm', true, [['images/vm.raw', 'ok']]],
      ['other', true, [['images/other.raw', 'ok']]],
    ]);
  });

  test('replaced: the replica that had it open serves the new file, as a fresh one does, and warns once', async () => {
    assert.equal((await c1.readFile({ name: 'vm' }, '/etc/hostname')).toString(), 'one\n');
    const next = path.join(store, 'images/vm.raw.new');
    ext4Image(next, 'two\n');
    fs.renameSync(next, image());
    const seen = await waitFor('the new image through the replica that had the old one open', async () => {
      const text = (await c1.readFile({ name: 'vm' }, '/etc/hostname')).toString();
      return text === 'two\n' ? text : undefined;
    }, 5000);
    assert.equal(seen, 'two\n');
    assert.equal((await c2.readFile({ name: 'vm' }, '/etc/hostname')).toString(), 'two\n');
    const changed = r1.logs.filter((l) => l.event === 'layer.source_changed');
    assert.equal(changed.length, 1, JSON.stringify(changed));
    assert.equal(changed[0].level, 'warn');
    assert.equal(changed[0].file, 'images/vm.raw');
  });

  test('deleted: both replicas refuse with the same ESTALE naming the file, and warn; layer check fails naming it', async () => {
    // Both have it open now.
    assert.equal((await c2.readFile({ name: 'vm' }, '/etc/hostname')).toString(), 'two\n');
    fs.rmSync(image());
    const errors = await Promise.all(
      [c1, c2].map((c) => waitFor('a refusal', async () => failure(c.readFile({ name: 'vm' }, '/etc/hostname')).catch(() => undefined), 5000)),
    );
    for (const err of errors) {
      assert.equal(err.errno, Errno.ESTALE, err.message);
      assert.equal(err.code, GrpcCode.FAILED_PRECONDITION, err.message);
      assert.match(err.message, /layer \d+ \(vm\): its image file images\/vm\.raw is missing/);
    }
    assert.equal(errors[0].message, errors[1].message, 'the same answer on both replicas');
    for (const r of [r1, r2]) {
      const missing = r.logs.filter((l) => l.event === 'layer.source_missing');
      assert.equal(missing.length, 1, JSON.stringify(missing));
      assert.equal(missing[0].level, 'warn');
    }
    // A third replica that never saw the file answers the same.
    const r3 = await startResolver({ store });
    const c3 = new StrataClient({ resolver: r3.address, deadlineMs: 5000 });
    try {
      assert.equal((await failure(c3.readFile({ name: 'vm' }, '/etc/hostname'))).message, errors[0].message);
    } finally {
      c3.close();
      await r3.stop();
    }
    // The other layer is untouched.
    assert.equal((await c1.readFile({ name: 'other' }, '/etc/hostname')).toString(), 'other\n');

    const all = strata(['--resolver', r1.address, 'layer', 'check']);
    assert.equal(all.status, 1, all.stdout);
    assert.match(all.stdout, /vm.*\n.*images\/vm\.raw.*missing/);
    assert.match(all.stdout, /other.*ok/);
    const one = strata(['--resolver', r1.address, 'layer', 'check', 'other', '--json']);
    assert.equal(one.status, 0, one.stderr);
    assert.equal((JSON.parse(one.stdout) as { layers: unknown[] }).layers.length, 1);
  });

  test('a file that is not an image any more (header): layer check says so', () => {
    fs.writeFileSync(path.join(store, 'images/other.raw'), Buffer.alloc(64 * 1024));
    const r = strata(['--resolver', r2.address, 'layer', 'check', 'other', '--json']);
    assert.equal(r.status, 1, r.stdout);
    const doc = JSON.parse(r.stdout) as { ok: boolean; layers: { ok: boolean; problems: string[] }[] };
    assert.equal(doc.ok, false);
    assert.equal(doc.layers[0].ok, false);
    assert.ok(doc.layers[0].problems.length > 0);
  });
});
