import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closest, editDistance } from './suggest';

const KNOWN = ['listen', 'store', 'redis', 'cache-mb', 'grace-ms', 'metrics-port', 'log-level'];

describe('closest', () => {
  test('other spellings of the same key', () => {
    assert.equal(closest('cacheMb', KNOWN), 'cache-mb');
    assert.equal(closest('cache_mb', KNOWN), 'cache-mb');
    assert.equal(closest('LOG_LEVEL', KNOWN), 'log-level');
    assert.equal(closest('--listen', KNOWN), 'listen');
  });

  test('typos, but not unrelated words', () => {
    assert.equal(closest('lisen', KNOWN), 'listen');
    assert.equal(closest('stroe', KNOWN), 'store');
    assert.equal(closest('metric-port', KNOWN), 'metrics-port');
    assert.equal(closest('zzz', KNOWN), undefined);
    assert.equal(closest('database', KNOWN), undefined);
    assert.equal(closest('x'.repeat(10_000), KNOWN), undefined);
  });

  test('edit distance counts a swap of neighbours as one', () => {
    assert.equal(editDistance('abc', 'abc'), 0);
    assert.equal(editDistance('abc', 'acb'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });
});
