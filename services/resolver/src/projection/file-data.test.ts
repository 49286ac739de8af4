import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Errno, StrataError } from '@strata/errors';
import type { NodeRecord } from '@strata/protocol';
import type { ChainView } from '../chains';
import { AnswerPool, FileData, POOLED_ANSWER_BYTES } from './file-data';

const FILE = 0o100644;

function rec(size: number): NodeRecord {
  const attr = { ino: 1, mode: FILE, nlink: 1, uid: 0, gid: 0, rdev: 0, size, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };
  return { errno: 0, attr, locations: [Buffer.from('f')], directory: false, linkTarget: Buffer.alloc(0), sourceLayer: 0 };
}

/** A sealed chain whose one layer holds `bytes`; `into` gives it readLocatedInto, `fail` makes every read fail. */
function view(bytes: Buffer, o: { into?: boolean; fail?: boolean; short?: number } = {}): { view: ChainView; calls: { located: number; into: number } } {
  const calls = { located: 0, into: 0 };
  const source = {
    readLocated: async (_loc: Buffer, offset: number, length: number) => {
      calls.located++;
      if (o.fail) throw new StrataError(Errno.EIO, 'bad block');
      return Buffer.from(bytes.subarray(offset, offset + length));
    },
    ...(o.into
      ? {
          readLocatedInto: async (_loc: Buffer, into: Buffer, offset: number, length: number) => {
            calls.into++;
            if (o.fail) throw new StrataError(Errno.EIO, 'bad block');
            return o.short ?? bytes.copy(into, 0, offset, offset + length);
          },
        }
      : {}),
  };
  return { view: { ttlMs: undefined, projection: { layers: [source] } } as unknown as ChainView, calls };
}

test('large answers are read into pooled buffers when the source can; given back, the next answer reuses one', async () => {
  const bytes = randomBytes(3 << 20);
  const pool = new AnswerPool();
  const files = new FileData(pool);
  const { view: v, calls } = view(bytes, { into: true });
  const path = Buffer.from('/f');
  const a = await files.read(v, path, rec(bytes.length), 0, 1 << 20);
  assert.ok(a.data.equals(bytes.subarray(0, 1 << 20)));
  assert.equal(a.eof, false);
  assert.equal(calls.into, 1);
  assert.ok(pool.giveBack(a.data));
  assert.equal(pool.giveBack(a.data), false, 'given back twice: refused');
  const b = await files.read(v, path, rec(bytes.length), 2 << 20, 1 << 20);
  assert.equal(b.data.buffer, a.data.buffer, 'the same memory read into again');
  assert.ok(b.data.equals(bytes.subarray(2 << 20)));
  assert.equal(b.eof, true);
  // Not given back: the next answer gets fresh memory, and b's bytes stay b's.
  const c = await files.read(v, path, rec(bytes.length), 1 << 20, 1 << 20);
  assert.notEqual(c.data.buffer, b.data.buffer);
  assert.ok(b.data.equals(bytes.subarray(2 << 20)));
  // Small answers, and sources without readLocatedInto, are read as before.
  const small = await files.read(v, path, rec(bytes.length), 5, POOLED_ANSWER_BYTES - 1);
  assert.ok(small.data.equals(bytes.subarray(5, POOLED_ANSWER_BYTES + 4)));
  assert.equal(calls.located, 1);
  assert.equal(pool.giveBack(small.data), false, 'not a pooled buffer');
  const plain = view(bytes);
  const d = await new FileData(pool).read(plain.view, path, rec(bytes.length), 0, 1 << 20);
  assert.ok(d.data.equals(bytes.subarray(0, 1 << 20)));
  assert.equal(pool.giveBack(d.data), false);
});

test('a pooled read that fails gives its buffer back and says which file; a source answering more than asked is refused', async () => {
  const bytes = randomBytes(1 << 20);
  const pool = new AnswerPool();
  const files = new FileData(pool);
  await assert.rejects(files.read(view(bytes, { into: true, fail: true }).view, Buffer.from('/bad'), rec(bytes.length), 0, 1 << 20), (e: unknown) => e instanceof StrataError && e.errno === Errno.EIO && /\/bad/.test(e.message));
  assert.equal(pool.pooledBytes, 1 << 20);
  await assert.rejects(files.read(view(bytes, { into: true, short: (1 << 20) + 1 }).view, Buffer.from('/f'), rec(bytes.length), 0, 1 << 20), (e: unknown) => e instanceof StrataError && e.errno === Errno.EIO);
  // A short answer (the file shrank) is a view of the pooled buffer, and still goes back whole.
  const short = await files.read(view(bytes, { into: true, short: 1000 }).view, Buffer.from('/f'), rec(bytes.length), 0, 1 << 20);
  assert.equal(short.data.length, 1000);
  assert.ok(pool.giveBack(short.data));
});

test('the pool keeps at most its bound of given-back bytes', () => {
  const pool = new AnswerPool(2 << 20);
  const bufs = [pool.take(1 << 20), pool.take(1 << 20), pool.take(1 << 20)];
  assert.deepEqual(bufs.map((b) => pool.giveBack(b)), [true, true, false]);
  assert.equal(pool.pooledBytes, 2 << 20);
  assert.equal(pool.giveBack(Buffer.allocUnsafeSlow(1 << 20)), false, 'a buffer it did not make');
  assert.equal(pool.giveBack(bufs[0].subarray(10)), false, 'a view from inside one');
});
