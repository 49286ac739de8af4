import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GrpcCode, StrataError } from '@strata/errors';
import type { Grant } from '@strata/layers';
import { Grant as PbGrant, Permission } from './gen/strata/v1/policy';
import { grantFromProto, grantToProto, layerSelectorFromProto, permissionFromProto } from './policy-model';

test('a grant of each selector kind survives the wire', () => {
  for (const layer of [{ id: 7 }, { name: 'vm1' }, { prefix: 'vm-' }, { prefix: '' }]) {
    const g: Grant = { identity: 'spiffe://x/y', permission: 'admin', layer, grantedBy: 'root', createTimeMs: 12 };
    assert.deepEqual(grantFromProto(PbGrant.decode(PbGrant.encode(grantToProto(g)).finish())), g);
  }
});

test('a request without a permission or a layer is INVALID_ARGUMENT', () => {
  const invalid = (err: unknown): boolean => err instanceof StrataError && err.code === GrpcCode.INVALID_ARGUMENT;
  assert.throws(() => permissionFromProto(Permission.PERMISSION_UNSPECIFIED), invalid);
  assert.throws(() => layerSelectorFromProto(undefined), invalid);
  assert.throws(() => layerSelectorFromProto({ selector: undefined }), invalid);
});
