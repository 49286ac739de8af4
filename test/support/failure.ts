import assert from 'node:assert/strict';
import { isStrataError, type StrataError } from '@strata/errors';

/** The StrataError a call (or a promise) fails with; fails the test when it succeeds or throws anything else. */
export async function failure(p: Promise<unknown> | (() => Promise<unknown>)): Promise<StrataError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    assert.ok(isStrataError(err), `a StrataError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a failure');
}
