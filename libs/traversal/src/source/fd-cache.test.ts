import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FdCache } from './fd-cache';
import { readFdAt } from './read-at';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fds-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function file(name: string, text: string): Buffer {
  const p = path.join(root, name);
  fs.writeFileSync(p, text);
  return Buffer.from(p);
}

function isOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

/** Closes run through the thread pool: give them a moment. */
async function settled(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 20));
}

test('a file stays open across reads, and an evicted one is closed', async () => {
  const cache = new FdCache(2);
  const a = file('a', 'alpha');
  const first = await cache.acquire(a);
  assert.equal((await readFdAt(first.fd, 1, 3)).toString(), 'lph');
  first.release();
  const again = await cache.acquire(a);
  assert.equal(again.fd, first.fd, 'reused');
  again.release();
  const b = await cache.acquire(file('b', 'beta'));
  b.release();
  const c = await cache.acquire(file('c', 'gamma'));
  c.release();
  await settled();
  assert.ok(!isOpen(first.fd), 'a was evicted and closed');
  assert.ok(isOpen(c.fd));
  cache.clear();
  await settled();
  assert.ok(!isOpen(c.fd) && !isOpen(b.fd), 'clear closes every file');
});

test('a file evicted while a read holds it is closed when that read releases it', async () => {
  const cache = new FdCache(1);
  const held = await cache.acquire(file('held', 'held data'));
  (await cache.acquire(file('other', 'x'))).release();
  await settled();
  assert.ok(isOpen(held.fd), 'still in use');
  assert.equal((await readFdAt(held.fd, 0, 100)).toString(), 'held data', 'short at end of file');
  held.release();
  held.release();
  await settled();
  assert.ok(!isOpen(held.fd));
  cache.clear();
});

test('a failed open is not kept, and symlinks are not followed', async () => {
  const cache = new FdCache(4);
  const missing = Buffer.from(path.join(root, 'missing'));
  await assert.rejects(cache.acquire(missing), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  fs.writeFileSync(missing, 'now here');
  const now = await cache.acquire(missing);
  assert.equal((await readFdAt(now.fd, 0, 8)).toString(), 'now here');
  now.release();
  const link = path.join(root, 'link');
  fs.symlinkSync(missing.toString(), link);
  await assert.rejects(cache.acquire(Buffer.from(link)), (err: NodeJS.ErrnoException) => err.code === 'ELOOP');
  cache.clear();
});
