import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, StrataError, isStrataError } from '@strata/errors';
import { SessionRequest, SessionResponse } from './gen/strata/v1/session';
import { GetXattrRequest, GetXattrResponse, OPERATIONS, answerOf, dispatchCase, errorInfoOf, isOperation, requestCase, requestOf, unaryMethod, type OperationHandlers } from './index';

test('every Session request case is an operation with a unary method of its name', () => {
  const ops = Object.keys(OPERATIONS);
  assert.deepEqual(ops.sort(), ['getXattr', 'listXattr', 'read', 'readDir', 'readLink', 'stat', 'statFs']);
  for (const op of ops) {
    assert.equal(OPERATIONS[op as keyof typeof OPERATIONS].method.toLowerCase(), op.toLowerCase());
    assert.ok(isOperation(op));
  }
  assert.ok(!isOperation('walk') && !isOperation('toString'));
});

test('a request built from the table survives the wire and names its operation', () => {
  const req = requestCase('getXattr', { layer: undefined, path: Buffer.from('/etc'), name: 'user.x' });
  const wire = SessionRequest.decode(SessionRequest.encode({ id: 7, request: req, traceContext: {} }).finish());
  const { op, req: payload } = requestOf(wire.request!);
  assert.equal(op, 'getXattr');
  assert.deepEqual(payload, { layer: undefined, path: Buffer.from('/etc'), name: 'user.x' });
});

test('answerOf returns the typed answer, the resolver errno, or EIO for an answer of another kind', () => {
  const stat: SessionResponse = { id: 1, response: { $case: 'stat', stat: { attr: undefined } } };
  assert.deepEqual(answerOf('stat', stat.response), { attr: undefined });
  const failed = errorInfoOf(StrataError.notFound('gone'));
  assert.throws(() => answerOf('stat', { $case: 'error', error: failed }), (e: unknown) => isStrataError(e) && e.errno === Errno.ENOENT);
  assert.throws(() => answerOf('readDir', stat.response), (e: unknown) => isStrataError(e) && e.errno === Errno.EIO && /stat to a readDir/.test(e.message));
  assert.throws(() => answerOf('stat', undefined), (e: unknown) => isStrataError(e) && e.errno === Errno.EIO);
});

test('dispatchCase runs the handler of the case and wraps its answer in the same case', async () => {
  const calls: string[] = [];
  const handlers = Object.fromEntries(
    Object.keys(OPERATIONS).map((op) => [op, async () => { calls.push(op); return { names: ['user.a'] }; }]),
  ) as unknown as OperationHandlers;
  const answer = await dispatchCase(handlers, requestCase('listXattr', { layer: undefined, path: Buffer.from('/') }), undefined);
  assert.deepEqual(calls, ['listXattr']);
  assert.deepEqual(answerOf('listXattr', answer), { names: ['user.a'] });
});

test('each unary operation has the generated method of the same name, and its codecs round-trip', () => {
  const m = unaryMethod('getXattr');
  assert.equal(m.path, `/strata.v1.ProjectionService/${OPERATIONS.getXattr.method}`);
  const req = { layer: undefined, path: Buffer.from('/x'), name: 'user.y' };
  assert.deepEqual(GetXattrRequest.decode(m.serialize(req)), req);
  assert.deepEqual(m.deserialize(Buffer.from(GetXattrResponse.encode({ value: Buffer.from('v') }).finish())), { value: Buffer.from('v') });
  for (const op of ['stat', 'readDir', 'readLink', 'listXattr', 'statFs'] as const) assert.match(unaryMethod(op).path, new RegExp(`/${OPERATIONS[op].method}$`));
});
