import { test } from 'node:test';
import assert from 'node:assert/strict';
import { callCounts } from './systems';

test("callCounts reads the resolver's request counts by method from Prometheus text", () => {
  const text = [
    '# HELP strata_resolver_request_duration Request latency',
    '# TYPE strata_resolver_request_duration histogram',
    'strata_resolver_request_duration_bucket{method="ExtentMap",otel_scope_name="strata",le="0.005"} 3',
    'strata_resolver_request_duration_count{method="Session.read",otel_scope_name="strata"} 876',
    'strata_resolver_request_duration_count{otel_scope_name="strata",method="ExtentMap"} 590',
    'strata_resolver_request_duration_sum{method="ExtentMap",otel_scope_name="strata"} 1.5',
    'strata_resolver_other_count{method="Session.read"} 5',
  ].join('\n');
  assert.deepEqual(callCounts(text), { 'Session.read': 876, ExtentMap: 590 });
});
