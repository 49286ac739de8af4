import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CATALOG_FRESHNESS, LIVE_FRESHNESS } from './live-freshness';

test('the stacked LIVE caches and one request fit the one-second budget', () => {
  const { budgetMs, ...parts } = LIVE_FRESHNESS;
  const sum = Object.values(parts).reduce((a, b) => a + b, 0);
  assert.ok(sum <= budgetMs, `parts add up to ${sum} ms, over the ${budgetMs} ms budget`);
  assert.ok(Object.values(parts).every((ms) => ms > 0));
});

test('catalog changes are noticed within the budget', () => {
  assert.ok(CATALOG_FRESHNESS.refreshMs + CATALOG_FRESHNESS.referenceMs + LIVE_FRESHNESS.requestMs <= CATALOG_FRESHNESS.budgetMs);
});
