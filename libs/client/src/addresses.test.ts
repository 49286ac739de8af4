import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, isStrataError } from '@strata/errors';
import { addressListProblem, addressProblem, dialAddress, hostOf, parseAddresses, pinnedAddress, pinnedOf } from './addresses';
import { StrataClient } from './strata-client';

test('host:port addresses a resolver can have pass', () => {
  for (const a of ['127.0.0.1:7400', 'localhost:1', 'resolver-1.prod.example.com:65535', '[::1]:7400', 'my_host:80', 'host.:80']) {
    assert.equal(addressProblem(a), undefined, a);
  }
});

test('each kind of bad address gets its own reason', () => {
  const cases: [string, string][] = [
    ['garbage', 'expected host:port (the port is missing)'],
    ['http://127.0.0.1:7400', 'expected host:port (no scheme)'],
    ['dns:///127.0.0.1:7400', 'expected host:port (no scheme)'],
    ['127.0.0.1:7400/x', 'expected host:port (no path)'],
    ['127.0.0.1:99999', 'port 99999 is out of range (1-65535)'],
    ['127.0.0.1:0', 'port 0 is out of range (1-65535)'],
    ['127.0.0.1:http', "port 'http' is not a number"],
    ['127.0.0.1:', 'expected host:port (the port is missing)'],
    [':7400', 'expected host:port (the host is missing)'],
    ['::1:7400', 'expected host:port (an IPv6 address goes in brackets: [::1]:7400)'],
    ['[::1]', 'expected [ipv6]:port (the port is missing)'],
    ['[nope]:1', "'nope' is not an IPv6 address"],
    ['999.1.1.1:80', "'999.1.1.1' is not an IPv4 address"],
    ['bad!host:80', "'bad!host' is not a host name or IP address"],
    ['-lead.example:80', "'-lead.example' is not a host name or IP address"],
    ['a b:80', 'expected host:port (no spaces)'],
  ];
  for (const [a, why] of cases) assert.equal(addressProblem(a), why, a);
});

test('lists: empty entries and the first bad entry are named', () => {
  assert.equal(addressListProblem('127.0.0.1:1, 127.0.0.1:2'), undefined);
  assert.deepEqual(addressListProblem('127.0.0.1:1,,127.0.0.1:2'), { text: '127.0.0.1:1,,127.0.0.1:2', problem: 'entry 2 of 3 is empty' });
  assert.deepEqual(addressListProblem('127.0.0.1:1,'), { text: '127.0.0.1:1,', problem: 'entry 2 of 2 is empty' });
  assert.deepEqual(addressListProblem(''), { text: '', problem: 'no address given' });
  assert.deepEqual(addressListProblem(['127.0.0.1:1', 'http://b:2']), { text: 'http://b:2', problem: 'expected host:port (no scheme)' });
  assert.deepEqual(parseAddresses([' a:1 ', 'b:2,c:3']), ['a:1', 'b:2', 'c:3']);
});

test('a client for a bad address fails at once with EINVAL naming it', () => {
  assert.throws(
    () => new StrataClient({ resolver: 'http://127.0.0.1:7400' }),
    (err: unknown) => isStrataError(err) && err.errno === Errno.EINVAL && err.message === "resolver address 'http://127.0.0.1:7400': expected host:port (no scheme)",
  );
});

test('hostOf', () => {
  assert.equal(hostOf('[::1]:7'), '::1');
  assert.equal(hostOf('a.b:7'), 'a.b');
});

test('the pinned form "NAME (IP:PORT)" a name expands to is an address too, checked', () => {
  for (const a of ['r.example (10.0.0.5:7400)', 'r.example ([fd00::1]:7400)', 'svc.ns.svc.cluster.local. (10.1.2.3:1)']) assert.equal(addressProblem(a), undefined, a);
  assert.equal(addressProblem('10.0.0.1 (10.0.0.5:7400)'), `'10.0.0.1' is an IP address: "NAME (IP:PORT)" pins a host name to one of its addresses`);
  assert.equal(addressProblem('r.example (other.example:7400)'), `'other.example:7400' must be an IP address and port ("NAME (IP:PORT)")`);
  assert.equal(addressProblem('r.example (10.0.0.5)'), 'expected host:port (the port is missing)');
  assert.equal(addressProblem('bad!name (10.0.0.5:1)'), "'bad!name' is not a host name or IP address");
  assert.equal(addressProblem('r.example  (10.0.0.5:1)'), 'expected host:port (no spaces)');
  assert.deepEqual(parseAddresses('r (10.0.0.5:1),r (10.0.0.6:1)'), ['r (10.0.0.5:1)', 'r (10.0.0.6:1)']);
  assert.deepEqual(pinnedOf('r (10.0.0.5:1)'), { name: 'r', dial: '10.0.0.5:1' });
  assert.equal(pinnedOf('r:1'), undefined);
  assert.equal(pinnedAddress('r', 'fd00::1', 7), 'r ([fd00::1]:7)');
  assert.equal(dialAddress('r ([fd00::1]:7)'), '[fd00::1]:7');
  assert.equal(dialAddress('r:7'), 'r:7');
  assert.equal(hostOf('r (10.0.0.5:1)'), 'r');
});
