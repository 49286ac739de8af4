import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nameHash } from './name-hash';

test('name hash: the DIR_ITEM key offset mkfs/kernel give "default" in the root tree', () => {
  // From `btrfs inspect-internal dump-tree -t 1`: key (ROOT_TREE_DIR DIR_ITEM 2378154706) name: default
  assert.equal(nameHash(Buffer.from('default')), 2378154706n);
});
