import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { addressProblem, parseHostPort } from './address';

describe('parseHostPort', () => {
  test('IPv4, host names and bracketed IPv6', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:7400'), { ok: true, value: { host: '127.0.0.1', port: 7400 } });
    assert.deepEqual(parseHostPort('resolver-a.strata:1'), { ok: true, value: { host: 'resolver-a.strata', port: 1 } });
    assert.deepEqual(parseHostPort('localhost:65535'), { ok: true, value: { host: 'localhost', port: 65535 } });
    assert.deepEqual(parseHostPort('[::1]:7400'), { ok: true, value: { host: '::1', port: 7400 } });
    assert.deepEqual(parseHostPort('0.0.0.0:0', { allowPortZero: true }), { ok: true, value: { host: '0.0.0.0', port: 0 } });
  });

  test('what people type instead, each with its reason', () => {
    const cases: [string, RegExp][] = [
      ['garbage', /^expected HOST:PORT \(e\.g\. 127\.0\.0\.1:7400\), got "garbage"$/],
      ['http://x:1', /^expected HOST:PORT, not a URL, got "http:\/\/x:1"$/],
      ['127.0.0.1:99999', /^port 99999 is out of range \(1-65535\) in "127\.0\.0\.1:99999"$/],
      ['127.0.0.1:0', /out of range \(1-65535\)/],
      ['::1:7400', /IPv6 address goes in brackets/],
      ['[nope]:1', /IPv6 address between the brackets/],
      [':7400', /host is missing/],
      ['host:', /decimal port/],
      ['host:http', /decimal port/],
      ['host:-1', /decimal port/],
      ['999.1.1.1:1', /is not a host name or IP address/],
      ['a..b:1', /is not a host name or IP address/],
      ['under_score:1', /is not a host name or IP address/],
      ['', /expected HOST:PORT/],
    ];
    for (const [text, why] of cases) {
      const r = parseHostPort(text);
      assert.equal(r.ok, false, text);
      if (!r.ok) assert.match(r.problem, why, text);
    }
  });

  test('addressProblem is undefined for a good address', () => {
    assert.equal(addressProblem('h:1'), undefined);
    assert.match(addressProblem('h') ?? '', /HOST:PORT/);
  });
});
