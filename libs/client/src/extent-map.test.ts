import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StrataError } from '@strata/errors';
import { ExtentKind, type ExtentMapResponse } from '@strata/protocol';
import { extentMapFromProto } from './extent-map';

const FILE = { path: 'vm/a.qcow2', dev: 1, ino: 2, size: 3, mtimeSec: 4, mtimeNsec: 5 };

function response(extents: ExtentMapResponse['extents'], offset = 100, length = 30): ExtentMapResponse {
  return { storeId: 's', attr: undefined, files: [FILE], extents, offset, length, eof: true, siblings: [] };
}

test('a well-formed map comes through as runs', () => {
  const m = extentMapFromProto(
    response([
      { offset: 100, length: 10, kind: ExtentKind.EXTENT_KIND_DATA, file: 0, fileOffset: 7, reason: '' },
      { offset: 110, length: 10, kind: ExtentKind.EXTENT_KIND_HOLE, file: 0, fileOffset: 0, reason: '' },
      { offset: 120, length: 10, kind: ExtentKind.EXTENT_KIND_UNMAPPED, file: 0, fileOffset: 0, reason: 'compressed cluster' },
    ]),
  );
  assert.deepEqual(m.extents, [
    { kind: 'data', offset: 100, length: 10, file: 0, fileOffset: 7 },
    { kind: 'hole', offset: 110, length: 10 },
    { kind: 'unmapped', offset: 120, length: 10, reason: 'compressed cluster' },
  ]);
});

test('siblings come through checked as the file is; one that is bad, or not from its start, fails the answer', () => {
  const data = (offset: number, length: number) => ({ offset, length, kind: ExtentKind.EXTENT_KIND_DATA, file: 0, fileOffset: 0, reason: '' });
  const sib = response([data(0, 3)], 0, 3);
  const m = extentMapFromProto({ ...response([data(100, 30)]), siblings: [{ path: Buffer.from('/d/b'), map: { ...sib, siblings: [{ path: Buffer.from('/x'), map: sib }] } }] });
  assert.equal(m.siblings?.length, 1);
  assert.equal(m.siblings![0].path.toString(), '/d/b');
  assert.deepEqual(m.siblings![0].map.extents, [{ kind: 'data', offset: 0, length: 3, file: 0, fileOffset: 0 }]);
  // Nested siblings are not followed.
  assert.deepEqual(m.siblings![0].map.siblings ?? [], []);
  assert.throws(() => extentMapFromProto({ ...response([data(100, 30)]), siblings: [{ path: Buffer.from('/d/b'), map: response([data(0, 2)], 0, 3) }] }), StrataError);
  assert.throws(() => extentMapFromProto({ ...response([data(100, 30)]), siblings: [{ path: Buffer.from('/d/b'), map: response([data(5, 3)], 5, 3) }] }), StrataError);
  assert.throws(() => extentMapFromProto({ ...response([data(100, 30)]), siblings: [{ path: Buffer.from('/d/b'), map: undefined }] }), StrataError);
});

test('a sibling outside the file\'s directory is refused unless the directories after it were asked for', () => {
  const data = (offset: number, length: number) => ({ offset, length, kind: ExtentKind.EXTENT_KIND_DATA, file: 0, fileOffset: 0, reason: '' });
  const sib = response([data(0, 3)], 0, 3);
  const answer = (...paths: string[]): ExtentMapResponse => ({ ...response([data(100, 30)]), siblings: paths.map((p) => ({ path: Buffer.from(p), map: sib })) });
  const path = Buffer.from('/t/d0/f0');
  // The directory's own files, however the path is spelled.
  assert.deepEqual(extentMapFromProto(answer('/t/d0/f1', '/t//d0/f2'), { path }).siblings?.map((s) => s.path.toString()), ['/t/d0/f1', '/t//d0/f2']);
  assert.equal(extentMapFromProto(answer('/t/d0/f1'), { path: Buffer.from('t/d0/f0') }).siblings?.length, 1);
  // Another directory's (the next one, a parent, a subdirectory, the root), not asked for: the answer is refused.
  for (const other of ['/t/d1/f0', '/t/f', '/t/d0/sub/f', '/f']) {
    assert.throws(() => extentMapFromProto(answer('/t/d0/f1', other), { path }), (e: unknown) => e instanceof StrataError && /outside the file's directory/.test(e.message), other);
    assert.throws(() => extentMapFromProto(answer(other), { path, beyondDirectory: false }), StrataError, other);
  }
  // Asked for: the next directories' files come through, checked as the file's are.
  const beyond = extentMapFromProto(answer('/t/d0/f1', '/t/d1/f0', '/t/d2/f0'), { path, beyondDirectory: true });
  assert.deepEqual(beyond.siblings?.map((s) => s.path.toString()), ['/t/d0/f1', '/t/d1/f0', '/t/d2/f0']);
  assert.throws(() => extentMapFromProto({ ...answer('/t/d1/f0'), siblings: [{ path: Buffer.from('/t/d1/f0'), map: response([data(5, 3)], 5, 3) }] }, { path, beyondDirectory: true }), StrataError);
});

test('a map with a gap, an overlap, an empty run, a file it does not list or a wrong total is refused', () => {
  const data = (offset: number, length: number, file = 0) => ({ offset, length, kind: ExtentKind.EXTENT_KIND_DATA, file, fileOffset: 0, reason: '' });
  for (const bad of [
    response([data(100, 10), data(111, 19)]),
    response([data(100, 10), data(105, 25)]),
    response([data(100, 0), data(100, 30)]),
    response([data(100, 30, 1)]),
    response([data(100, 20)]),
    { ...response([data(100, 30)]), files: [undefined as unknown as typeof FILE] },
  ]) {
    assert.throws(() => extentMapFromProto(bad), StrataError);
  }
});

test('random maps: every one is refused with a StrataError or comes out contiguous and inside its files', () => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    const offset = rnd(3) === 0 ? 0 : rnd(1000);
    const extents: ExtentMapResponse['extents'] = [];
    let pos = offset;
    for (let j = rnd(6); j > 0; j--) {
      const length = rnd(4) === 0 ? 0 : 1 + rnd(100);
      extents.push({ offset: rnd(5) === 0 ? rnd(2000) : pos, length, kind: rnd(4) as ExtentKind, file: rnd(3), fileOffset: rnd(1 << 20), reason: '' });
      pos += length;
    }
    const r: ExtentMapResponse = { storeId: 's', attr: undefined, files: rnd(2) === 0 ? [FILE] : [FILE, { ...FILE, path: 'b' }], extents, offset, length: rnd(5) === 0 ? rnd(500) : pos - offset, eof: rnd(2) === 0, siblings: [] };
    let m;
    try {
      m = extentMapFromProto(r);
    } catch (err) {
      assert.ok(err instanceof StrataError, String(err));
      continue;
    }
    accepted++;
    let at = m.offset;
    for (const e of m.extents) {
      assert.equal(e.offset, at);
      assert.ok(e.length > 0);
      if (e.kind === 'data') assert.ok(e.file < m.files.length);
      at += e.length;
    }
    assert.equal(at, m.offset + m.length);
  }
  assert.ok(accepted > 100, `${accepted} accepted`);
});
