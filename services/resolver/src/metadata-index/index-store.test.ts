import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IndexRejected } from './index-format';
import { IndexStore } from './index-store';

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-index-store-'));
  return fn(path.join(dir, 'index')).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

test('files are named by the chain identity and the version, written whole, read back, bounded on read', async () => {
  await withDir(async (dir) => {
    const s = new IndexStore(dir, 1000);
    assert.equal(await s.read('k1'), undefined, 'no file: no index');
    assert.notEqual(s.fileOf('k1'), s.fileOf('k2'));
    assert.match(path.basename(s.fileOf('k1')), /^[0-9a-f]{40}\.v1\.idx$/);
    await s.write('k1', Buffer.from('one'));
    await s.write('k1', Buffer.from('two'));
    assert.equal((await s.read('k1'))?.toString(), 'two');
    assert.deepEqual(fs.readdirSync(dir), [path.basename(s.fileOf('k1'))], 'no temporary file left');
    fs.writeFileSync(s.fileOf('k2'), Buffer.alloc(1001));
    await assert.rejects(s.read('k2'), (err: unknown) => err instanceof IndexRejected && err.reason === 'too-big');
  });
});

test('pruning removes stale temporary files and the oldest indexes beyond the directory bound', async () => {
  await withDir(async (dir) => {
    const s = new IndexStore(dir, 10_000, 2500);
    const old = Date.now() / 1000 - 3600;
    for (let i = 0; i < 4; i++) {
      await s.write(`k${i}`, Buffer.alloc(1000));
      fs.utimesSync(s.fileOf(`k${i}`), old + i, old + i);
    }
    const staleTmp = `${s.fileOf('k9')}.tmp-1-aaaa`;
    const freshTmp = `${s.fileOf('k8')}.tmp-2-bbbb`;
    fs.writeFileSync(staleTmp, 'x');
    fs.utimesSync(staleTmp, old, old);
    fs.writeFileSync(freshTmp, 'x');
    // The writes above pruned as they went; 4 × 1000 bytes over a 2500-byte bound leave the 2 newest.
    await s.prune();
    assert.equal(await s.read('k0'), undefined);
    assert.equal(await s.read('k1'), undefined);
    assert.equal((await s.read('k3'))?.length, 1000);
    assert.equal((await s.read('k2'))?.length, 1000);
    assert.ok(!fs.existsSync(staleTmp), 'a dead writer left it: removed');
    assert.ok(fs.existsSync(freshTmp), 'a writer may be at work: kept');
  });
});
