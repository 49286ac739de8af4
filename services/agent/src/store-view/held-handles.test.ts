import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeldHandles } from './held-handles';

/** Handles that are their key, with the opens and closes made. */
function handles(max: number, failing = new Set<string>()) {
  const opened: string[] = [];
  const closed: string[] = [];
  const h = new HeldHandles<string>(
    max,
    async (key) => {
      opened.push(key);
      if (failing.has(key)) throw new Error(`cannot open ${key}`);
      return key;
    },
    async (key) => {
      closed.push(key);
    },
  );
  return { h, opened, closed };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a handle is opened once for concurrent users and kept after them', async () => {
  const { h, opened, closed } = handles(4);
  const got = await Promise.all([1, 2, 3].map(() => h.use('a', async (x) => x)));
  assert.deepEqual(got, ['a', 'a', 'a']);
  assert.deepEqual(opened, ['a']);
  assert.deepEqual(closed, []);
  assert.equal(h.size, 1);
});

test('beyond the bound the least recently used idle handle is closed, never one in use', async () => {
  const { h, closed } = handles(2);
  let release!: () => void;
  const busy = h.use('a', () => new Promise<void>((r) => (release = r)));
  await settle();
  await h.use('b', async () => undefined);
  await h.use('c', async () => undefined);
  await settle();
  assert.deepEqual(closed, ['b'], 'a is in use, b is the idle one');
  release();
  await busy;
  assert.equal(h.size, 2);
});

test('a failed open is not kept; a forgotten handle closes when its last user is done', async () => {
  const failing = new Set(['x']);
  const { h, opened, closed } = handles(4, failing);
  await assert.rejects(h.use('x', async () => undefined), /cannot open x/);
  failing.clear();
  assert.equal(await h.use('x', async (v) => v), 'x');
  assert.deepEqual(opened, ['x', 'x']);
  let release!: () => void;
  const busy = h.use('x', () => new Promise<void>((r) => (release = r)));
  await settle();
  h.forget('x');
  await settle();
  assert.deepEqual(closed, []);
  release();
  await busy;
  await settle();
  assert.deepEqual(closed, ['x']);
  await h.closeAll();
  assert.equal(h.size, 0);
});
