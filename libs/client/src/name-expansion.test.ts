import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, GrpcCode, isStrataError } from '@strata/errors';
import { MAX_ADDRESSES_PER_NAME, dialTarget, expandAddresses, expandName, isHostName, mergeExpansions, spreadAddresses, systemLookup, type LookedUp, type LookupAll } from './name-expansion';

const v4 = (address: string): LookedUp => ({ address, family: 4 });
const v6 = (address: string): LookedUp => ({ address, family: 6 });

/** A lookup answering from a table; remembers what it was asked. */
function table(answers: Record<string, readonly LookedUp[]>): LookupAll & { asked: string[] } {
  const asked: string[] = [];
  const lookup = async (host: string): Promise<readonly LookedUp[]> => {
    asked.push(host);
    const a = answers[host];
    if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return a;
  };
  return Object.assign(lookup, { asked });
}

test('IP literals and pinned addresses are kept as given, never looked up', async () => {
  const lookup = table({});
  const given = ['10.0.0.1:7400', '[fd00::1]:7400', 'r.example (10.0.0.9:7400)'];
  assert.deepEqual(await expandAddresses(given, lookup), { addresses: given, failed: [] });
  assert.deepEqual(lookup.asked, []);
  assert.equal(isHostName('r.example:1'), true);
  assert.equal(isHostName('10.0.0.1:1'), false);
  assert.equal(isHostName('r.example (10.0.0.1:1)'), false);
});

test('a name with several addresses becomes one pinned address each, in the order found, the port kept', async () => {
  const lookup = table({ 'r.example': [v4('10.0.0.5'), v4('10.0.0.6'), v4('10.0.0.7')], 'six.example': [v6('fd00::1'), v6('fd00::2')] });
  assert.deepEqual(await expandName('r.example:7400', lookup), ['r.example (10.0.0.5:7400)', 'r.example (10.0.0.6:7400)', 'r.example (10.0.0.7:7400)']);
  assert.deepEqual(await expandName('six.example:9', lookup), ['six.example ([fd00::1]:9)', 'six.example ([fd00::2]:9)']);
  // A fully qualified name with its root dot is looked up without it and shown as given.
  assert.deepEqual(await expandName('r.example.:1', lookup), ['r.example. (10.0.0.5:1)', 'r.example. (10.0.0.6:1)', 'r.example. (10.0.0.7:1)']);
});

test('a pinned address dials the IP and is spoken to as the name (TLS server name, :authority)', () => {
  assert.deepEqual(dialTarget('r.example (10.0.0.5:7400)'), { address: 'r.example (10.0.0.5:7400)', dial: '10.0.0.5:7400', serverName: 'r.example', authority: 'r.example:7400' });
  assert.deepEqual(dialTarget('r.example ([fd00::1]:7400)').dial, '[fd00::1]:7400');
  assert.deepEqual(dialTarget('r.example:7400'), { address: 'r.example:7400', dial: 'r.example:7400' });
});

test('one address per family is one host (localhost): the name stays, grpc-js tries both', async () => {
  const lookup = table({ localhost: [v6('::1'), v4('127.0.0.1')], single: [v4('10.0.0.1')] });
  assert.deepEqual(await expandName('localhost:7400', lookup), ['localhost:7400']);
  assert.deepEqual(await expandName('single:7400', lookup), ['single:7400']);
  assert.equal(spreadAddresses([v4('1.1.1.1'), v6('::2')]), undefined);
});

test('dual stack: the family with more addresses, a tie goes to the family found first', () => {
  assert.deepEqual(spreadAddresses([v6('fd00::1'), v4('10.0.0.1'), v4('10.0.0.2')]), ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual(spreadAddresses([v6('fd00::1'), v4('10.0.0.1'), v6('fd00::2'), v4('10.0.0.2')]), ['fd00::1', 'fd00::2']);
  assert.deepEqual(spreadAddresses([v4('10.0.0.1'), v6('fd00::1'), v6('fd00::2'), v4('10.0.0.2')]), ['10.0.0.1', '10.0.0.2']);
});

test('duplicates go, the first kept: repeated answers, repeated entries, a pinned address given and expanded, an IP given beside its name', async () => {
  const lookup = table({ r: [v4('10.0.0.5'), v4('10.0.0.5'), v4('10.0.0.6')] });
  assert.deepEqual(await expandName('r:1', lookup), ['r (10.0.0.5:1)', 'r (10.0.0.6:1)']);
  const r = await expandAddresses(['r (10.0.0.6:1)', 'r:1', 'r:1', '10.0.0.5:1', '10.0.0.7:1'], lookup);
  assert.deepEqual(r.addresses, ['r (10.0.0.6:1)', 'r (10.0.0.5:1)', '10.0.0.7:1']);
  // What `strata status` hands back from an agent: the name, and the IP:PORTs its sessions reported.
  assert.deepEqual(mergeExpansions([['10.0.0.5:1'], ['r (10.0.0.5:1)', 'r (10.0.0.6:1)'], ['10.0.0.6:1']]), ['r (10.0.0.5:1)', 'r (10.0.0.6:1)']);
});

test('a failed lookup is a clear, retryable error naming the name; the list keeps the name in its place', async () => {
  const isDnsError = (name: string, why: RegExp) => (err: unknown): boolean =>
    isStrataError(err) && err.errno === Errno.EIO && err.code === GrpcCode.UNAVAILABLE && err.message.includes(`cannot resolve host ${name} (resolver address ${name}:7400)`) && why.test(err.message);
  await assert.rejects(expandName('nowhere.example:7400', table({})), isDnsError('nowhere.example', /: ENOTFOUND$/));
  await assert.rejects(expandName('empty.example:7400', table({ 'empty.example': [] })), isDnsError('empty.example', /: no addresses$/));
  // A getaddrinfo that never returns (it keeps the process alive, as libuv's request would).
  const hang: LookupAll = () => new Promise(() => setTimeout(() => undefined, 1_000));
  const started = Date.now();
  await assert.rejects(expandName('slow.example:7400', hang, 50), isDnsError('slow.example', /no answer within 50 ms$/));
  assert.ok(Date.now() - started < 2_000, 'bounded by the timeout');
  const r = await expandAddresses(['nowhere.example:7400', '10.0.0.1:7400'], table({}));
  assert.deepEqual(r.addresses, ['nowhere.example:7400', '10.0.0.1:7400']);
  assert.equal(r.failed.length, 1);
  assert.match(r.failed[0].message, /cannot resolve host nowhere\.example/);
});

test("the system's lookup: localhost is one host; a name under .invalid fails naming it", async () => {
  assert.deepEqual(await expandName('localhost:7400', systemLookup), ['localhost:7400']);
  await assert.rejects(expandName('no-such-host.invalid:7400', systemLookup), (err: unknown) => isStrataError(err) && /cannot resolve host no-such-host\.invalid/.test(err.message));
});

test('a name answering with thousands of addresses stands for at most MAX_ADDRESSES_PER_NAME of them, the first found', () => {
  const many = Array.from({ length: 5_000 }, (_, i) => v4(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`));
  const started = Date.now();
  const spread = spreadAddresses(many) ?? [];
  assert.equal(spread.length, MAX_ADDRESSES_PER_NAME);
  assert.deepEqual(spread.slice(0, 2), ['10.0.0.0', '10.0.0.1']);
  assert.ok(Date.now() - started < 1_000);
});
