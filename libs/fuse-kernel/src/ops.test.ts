import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addon } from './native';
import { JsAnswer, OPS, opName, opRow } from './ops';

const built = existsSync(join(__dirname, '..', 'build', 'Release', 'fuse_kernel.node'));

test('the TypeScript op table and the native one name the same ops, answered the same way', { skip: !built && 'addon not built' }, () => {
  const native = addon().opcodes;
  const toJs = native.filter((row) => row.js !== 0);
  assert.deepEqual(
    OPS.map((row) => [row.opcode, row.name, row.answer]).sort((a, b) => Number(a[0]) - Number(b[0])),
    toJs.map((row) => [row.opcode, row.name, row.js]),
  );
  // Every op that reaches JavaScript may be answered by the native cache (OPEN: answered natively, JavaScript only asked
  // first under the open hook), and only ops with a name carry one.
  for (const row of toJs) assert.equal(row.cached, row.name !== 'open', row.name);
  assert.deepEqual(
    native.filter((row) => row.hasName).map((row) => row.name),
    ['lookup', 'getxattr'],
  );
});

test('what would write is refused EROFS natively, and no refused op reaches JavaScript', { skip: !built && 'addon not built' }, () => {
  const native = addon().opcodes;
  const EROFS = 30;
  for (const name of ['setattr', 'mknod', 'mkdir', 'unlink', 'rmdir', 'rename', 'rename2', 'link', 'symlink', 'write', 'create', 'tmpfile', 'setxattr', 'removexattr', 'fallocate', 'copy_file_range']) {
    const row = native.find((r) => r.name === name);
    assert.equal(row?.refuse, EROFS, name);
    assert.equal(row.js, 0, name);
  }
  for (const row of native.filter((r) => r.refuse !== 0)) assert.equal(opRow(row.opcode), undefined, row.name);
});

test('op names and rows by opcode', () => {
  assert.equal(opName(1), 'lookup');
  assert.equal(opName(44), 'readdirplus');
  assert.equal(opName(4095), 'op4095');
  assert.equal(opRow(28)?.answer, JsAnswer.LISTING);
  assert.equal(opRow(4), undefined);
  assert.equal(new Set(OPS.map((row) => row.opcode)).size, OPS.length);
});
