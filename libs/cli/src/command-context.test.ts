import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StrataError } from '@strata/errors';
import { TransportError } from '@strata/client';
import { CliError, resolverAddresses } from './command-context';
import { errorLine } from './main';

test('the resolver list comes from --resolver, else $STRATA_RESOLVER (empty counts as unset), and a bad one names its origin', () => {
  assert.equal(resolverAddresses({ resolver: 'a:1' }, { STRATA_RESOLVER: 'b:2' }), 'a:1');
  assert.equal(resolverAddresses({}, { STRATA_RESOLVER: 'b:2' }), 'b:2');
  assert.equal(resolverAddresses({}, { STRATA_RESOLVER: '' }), '127.0.0.1:7400');
  assert.throws(() => resolverAddresses({ resolver: 'http://127.0.0.1:7400' }, {}), {
    message: "--resolver 'http://127.0.0.1:7400': expected host:port (no scheme)",
  });
  assert.throws(() => resolverAddresses({}, { STRATA_RESOLVER: 'a:1,,b:2' }), { message: "$STRATA_RESOLVER 'a:1,,b:2': entry 2 of 3 is empty" });
  assert.throws(() => resolverAddresses({ resolver: '' }, {}), { message: "--resolver '': no address given" });
});

test('error lines: the errno after what a resolver said; none after a sentence the CLI or the client made', () => {
  assert.equal(errorLine(StrataError.notFound('/x does not exist')), '/x does not exist (ENOENT)');
  assert.equal(errorLine(new CliError(39, 'mountpoint m is not empty')), 'mountpoint m is not empty');
  const t = new TransportError('no resolver answers at a:1 (connection refused)', {
    failure: 'refused',
    addresses: ['a:1'],
    reason: 'connection refused',
    errno: 5,
    code: 14,
  });
  assert.equal(errorLine(t), 'no resolver answers at a:1 (connection refused)');
  assert.equal(errorLine(new Error('plain')), 'plain');
});
