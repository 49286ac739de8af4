import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redactSecrets, redactValue } from './redact';

test('passwords in URLs and password= parameters are replaced; everything else is kept', () => {
  const cases: [string, string][] = [
    ['redis://:secret@127.0.0.1:6379', 'redis://:***@127.0.0.1:6379'],
    ['rediss://user:s3cr:et/x@redis.example:6380/2', 'rediss://user:***@redis.example:6380/2'],
    ['redis+cluster://:pw@a:1,b:2', 'redis+cluster://:***@a:1,b:2'],
    ['--redis redis://default:hunter2@h:1 --store /s', '--redis redis://default:***@h:1 --store /s'],
    ['host=db password=hunter2 user=x', 'host=db password=*** user=x'],
    ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
    ['redis://user@host:1', 'redis://user@host:1'],
    ['mail alice@example.org', 'mail alice@example.org'],
  ];
  for (const [input, want] of cases) assert.equal(redactSecrets(input), want, input);
  for (const [input] of cases.slice(0, 5)) assert.doesNotMatch(redactSecrets(input), /secret|s3cr|hunter2|\bpw\b/);
});

test('values: nested strings, arrays and errors are redacted, bounded in depth', () => {
  const err = new Error('connect to redis://:secret@h:1 failed');
  const out = JSON.stringify(redactValue({ a: ['redis://:secret@h:1'], b: { c: { url: 'redis://:secret@h:1' } }, err, n: 3 }));
  assert.doesNotMatch(out, /secret/);
  assert.match(out, /"n":3/);
  let deep: unknown = 'redis://:secret@h:1';
  for (let i = 0; i < 50; i++) deep = { deep };
  assert.doesNotMatch(JSON.stringify(redactValue(deep)), /secret/);
});
