import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeKind, changeKindFromProto, changeKindToProto, type ChangeKindName } from './index';

test('change kinds map to strata.v1 ChangeKind and back', () => {
  const pairs: [ChangeKindName, ChangeKind][] = [
    ['added', ChangeKind.CHANGE_KIND_ADDED],
    ['modified', ChangeKind.CHANGE_KIND_MODIFIED],
    ['deleted', ChangeKind.CHANGE_KIND_DELETED],
  ];
  for (const [name, pb] of pairs) {
    assert.equal(changeKindToProto(name), pb);
    assert.equal(changeKindFromProto(pb), name);
  }
});

test('an unspecified or unknown kind still reports the path, as modified', () => {
  assert.equal(changeKindFromProto(ChangeKind.CHANGE_KIND_UNSPECIFIED), 'modified');
  assert.equal(changeKindFromProto(ChangeKind.UNRECOGNIZED), 'modified');
  assert.equal(changeKindFromProto(42 as ChangeKind), 'modified');
});
