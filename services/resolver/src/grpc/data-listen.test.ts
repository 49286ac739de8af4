import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dataAddressText, dataListenFromEnv, parseDataListen } from './data-listen';

test('--data-listen: HOST:PORT, [IPv6]:PORT, port 0, off and 0; anything else is a problem naming both forms', () => {
  assert.deepEqual(parseDataListen('127.0.0.1:7401'), { kind: 'at', host: '127.0.0.1', port: 7401 });
  assert.deepEqual(parseDataListen('[::1]:7401'), { kind: 'at', host: '::1', port: 7401 });
  assert.deepEqual(parseDataListen('resolver.example:0'), { kind: 'at', host: 'resolver.example', port: 0 });
  for (const off of ['off', 'OFF', '0', ' off ']) assert.deepEqual(parseDataListen(off), { kind: 'off' }, off);
  for (const bad of ['7401', 'http://h:1', 'h:65536', '::1:7401', '', 'h:-1', 'h:x']) {
    const r = parseDataListen(bad);
    assert.ok('problem' in r && /or 0 \/ off for no data stream/.test(r.problem), bad);
  }
});

test('from the environment: STRATA_RESOLVER_DATA_LISTEN, else STRATA_DATA_STREAM=0 for none, else beside the gRPC port', () => {
  assert.deepEqual(dataListenFromEnv({}), { kind: 'beside' });
  assert.deepEqual(dataListenFromEnv({ STRATA_DATA_STREAM: '0' }), { kind: 'off' });
  assert.deepEqual(dataListenFromEnv({ STRATA_DATA_STREAM: 'tls' }), { kind: 'beside' });
  assert.deepEqual(dataListenFromEnv({ STRATA_RESOLVER_DATA_LISTEN: '127.0.0.1:9' }), { kind: 'at', host: '127.0.0.1', port: 9 });
  assert.deepEqual(dataListenFromEnv({ STRATA_RESOLVER_DATA_LISTEN: 'off' }), { kind: 'off' });
  // Empty counts as unset, as every variable does; a value that does not parse too (main.ts refuses it before any start).
  assert.deepEqual(dataListenFromEnv({ STRATA_RESOLVER_DATA_LISTEN: '' }), { kind: 'beside' });
  assert.deepEqual(dataListenFromEnv({ STRATA_RESOLVER_DATA_LISTEN: 'nonsense' }), { kind: 'beside' });
});

test('an address as messages write it', () => {
  assert.equal(dataAddressText('127.0.0.1', 7401), '127.0.0.1:7401');
  assert.equal(dataAddressText('::1', 7401), '[::1]:7401');
});
