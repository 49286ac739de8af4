import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import {
  type Grant,
  type Policy,
  PolicyIndex,
  PolicyStore,
  addGrant,
  isEnforcedPolicy,
  formatLayerSelector,
  parseLayerSelector,
  parsePolicyFile,
  removeGrant,
  selectorMatches,
  serialisePolicyFile,
} from './index';

const grant = (identity: string, permission: Grant['permission'], layer: string): Grant => ({
  identity,
  permission,
  layer: parseLayerSelector(layer),
  grantedBy: 'root',
  createTimeMs: 1,
});

const policyOf = (...grants: Grant[]): PolicyIndex => new PolicyIndex({ generation: grants.length, updateTimeMs: 1, grants });

describe('layer selectors', () => {
  test('an id, a name, a prefix, and * for every layer', () => {
    assert.deepEqual(parseLayerSelector('42'), { id: 42 });
    assert.deepEqual(parseLayerSelector('vm1'), { name: 'vm1' });
    assert.deepEqual(parseLayerSelector('vm-*'), { prefix: 'vm-' });
    assert.deepEqual(parseLayerSelector('*'), { prefix: '' });
    for (const t of ['42', 'vm1', 'vm-*', '*']) assert.equal(formatLayerSelector(parseLayerSelector(t)), t);
  });

  test('what is not a layer name is refused, with EINVAL', () => {
    for (const t of ['', '0', 'a/b', 'vm 1', 'x*y*', '-lead']) {
      assert.throws(() => parseLayerSelector(t), (err: unknown) => err instanceof StrataError && err.errno === Errno.EINVAL, t);
    }
  });

  test('an id matches that layer whatever its name; a name that name; a prefix the names it begins', () => {
    const vm1 = { id: 7, name: 'vm1' };
    assert.ok(selectorMatches({ id: 7 }, vm1));
    assert.ok(!selectorMatches({ id: 8 }, vm1));
    assert.ok(selectorMatches({ name: 'vm1' }, vm1));
    assert.ok(!selectorMatches({ name: 'vm10' }, vm1));
    assert.ok(selectorMatches({ prefix: 'vm' }, vm1));
    assert.ok(!selectorMatches({ prefix: 'vm-' }, vm1));
    // A layer known only by id (none exists) is matched by its id and by "*", never by a name.
    assert.ok(selectorMatches({ id: 9 }, { id: 9 }));
    assert.ok(!selectorMatches({ name: 'vm1' }, { id: 9 }));
    assert.ok(!selectorMatches({ prefix: 'vm' }, { id: 9 }));
    assert.ok(selectorMatches({ prefix: '' }, { id: 9 }));
    // An unnamed layer: only its id and "*".
    assert.ok(!selectorMatches({ prefix: 'v' }, { id: 3, name: '' }));
    assert.ok(selectorMatches({ prefix: '' }, { id: 3, name: '' }));
  });
});

describe('access', () => {
  test('read grants read only; admin implies read', () => {
    const p = policyOf(grant('alice', 'read', 'vm1'), grant('bob', 'admin', 'vm1'));
    assert.deepEqual(p.access('alice', { id: 1, name: 'vm1' }), { read: true, admin: false });
    assert.deepEqual(p.access('bob', { id: 1, name: 'vm1' }), { read: true, admin: true });
    assert.deepEqual(p.access('carol', { id: 1, name: 'vm1' }), { read: false, admin: false });
    assert.deepEqual(p.access('alice', { id: 2, name: 'vm2' }), { read: false, admin: false });
  });

  test('grants of one identity add up: read by name and admin by prefix', () => {
    const p = policyOf(grant('alice', 'read', 'db'), grant('alice', 'admin', 'vm-*'), grant('alice', 'read', '12'));
    assert.deepEqual(p.access('alice', { id: 3, name: 'vm-web' }), { read: true, admin: true });
    assert.deepEqual(p.access('alice', { id: 4, name: 'db' }), { read: true, admin: false });
    assert.deepEqual(p.access('alice', { id: 12, name: 'other' }), { read: true, admin: false });
    assert.deepEqual(p.access('alice', { id: 13, name: 'vm' }), { read: false, admin: false });
  });

  test('a grant to unix-user:* applies to every host user, not to certificate identities or groups', () => {
    const p = policyOf(grant('unix-user:*', 'read', 'vm1'), grant('unix-user:alice', 'admin', 'vm2'));
    const vm1 = { id: 1, name: 'vm1' };
    assert.ok(p.access('unix-user:bob', vm1).read);
    assert.ok(p.access('unix-user:*', vm1).read);
    assert.ok(!p.access('unix-group:staff', vm1).read);
    assert.ok(!p.access('bob', vm1).read);
    assert.ok(p.access('unix-user:alice', { id: 2, name: 'vm2' }).admin);
    assert.ok(!p.access('unix-user:*', { id: 2, name: 'vm2' }).read);
  });

  test('administering a prefix needs an admin grant on that prefix or a shorter one', () => {
    const p = policyOf(grant('alice', 'admin', 'vm-*'), grant('bob', 'admin', 'vm-web'), grant('carol', 'read', '*'));
    assert.ok(p.administersPrefix('alice', 'vm-'));
    assert.ok(p.administersPrefix('alice', 'vm-web-'));
    assert.ok(!p.administersPrefix('alice', 'vm'));
    assert.ok(!p.administersPrefix('alice', ''));
    assert.ok(!p.administersPrefix('bob', 'vm-web'));
    assert.ok(!p.administersPrefix('carol', 'x'));
  });
});

describe('policy changes', () => {
  test('a grant given twice is one grant; a revoke of what is not there changes nothing', () => {
    const empty: Policy = { generation: 0, updateTimeMs: 0, grants: [] };
    const one = addGrant(empty, grant('alice', 'read', 'vm1'), 5);
    assert.equal(one.changed, true);
    assert.equal(one.policy.generation, 1);
    const again = addGrant(one.policy, grant('alice', 'read', 'vm1'), 6);
    assert.equal(again.changed, false);
    assert.equal(again.policy, one.policy);
    // The same identity and layer with another permission is another grant.
    assert.equal(addGrant(one.policy, grant('alice', 'admin', 'vm1'), 6).policy.grants.length, 2);
    assert.equal(removeGrant(one.policy, grant('alice', 'admin', 'vm1'), 7).changed, false);
    const gone = removeGrant(one.policy, grant('alice', 'read', 'vm1'), 7);
    assert.equal(gone.changed, true);
    assert.equal(gone.policy.generation, 2);
    assert.deepEqual(gone.policy.grants, []);
  });

  test('the file round-trips; a malformed one names the file and the field', () => {
    const p: Policy = { generation: 3, updateTimeMs: 9, grants: [grant('alice', 'read', 'vm-*'), grant('bob', 'admin', '4')] };
    assert.deepEqual(parsePolicyFile(serialisePolicyFile(p), 'f'), p);
    const bad = JSON.stringify({ generation: 1, updateTimeMs: 1, grants: [{ identity: 'a', permission: 'write', layer: { id: 1 }, grantedBy: '', createTimeMs: 1 }] });
    assert.throws(() => parsePolicyFile(bad, '/s/policy.json'), /policy file \/s\/policy\.json: grants\[0\]: field "permission" must be "read" or "admin"/);
    assert.throws(() => parsePolicyFile('{', '/s/policy.json'), (err: unknown) => err instanceof StrataError && err.code === GrpcCode.DATA_LOSS);
  });
});

describe('PolicyStore', () => {
  const roots: string[] = [];
  after(async () => {
    for (const r of roots) await fs.rm(r, { recursive: true, force: true });
  });
  const tempStore = async (): Promise<string> => {
    const r = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-policy-'));
    roots.push(r);
    return r;
  };

  test('two stores on one folder granting at once lose nothing (the catalog lock)', async () => {
    const root = await tempStore();
    const a = new PolicyStore(root);
    const b = new PolicyStore(root);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).grant({ identity: `user${i}`, permission: 'read', layer: { name: 'vm1' }, grantedBy: 'root' })),
    );
    const fresh = await new PolicyStore(root).current();
    assert.equal(fresh.index.policy.generation, 20);
    assert.equal(fresh.index.policy.grants.length, 20);
  });

  test('a change by another store is seen at the next look; a stale expected generation is refused', async () => {
    let t = 0;
    const root = await tempStore();
    const reader = new PolicyStore(root, { now: () => t });
    const writer = new PolicyStore(root);
    assert.equal((await reader.current()).index.policy.generation, 0);
    const { policy } = await writer.grant({ identity: 'alice', permission: 'read', layer: { id: 4 }, grantedBy: 'root' });
    // Within refreshMs the reader keeps what it had; after it, one stat shows the change.
    t += 100;
    assert.equal((await reader.current()).index.policy.generation, 0);
    t += 200;
    assert.ok((await reader.current()).index.access('alice', { id: 4 }).read);
    await assert.rejects(
      writer.revoke({ identity: 'alice', permission: 'read', layer: { id: 4 }, expectedGeneration: policy.generation + 5 }),
      (err: unknown) => err instanceof StrataError && err.code === GrpcCode.FAILED_PRECONDITION && /changed since you read it/.test(err.message),
    );
    assert.equal((await writer.revoke({ identity: 'alice', permission: 'read', layer: { id: 4 }, expectedGeneration: policy.generation })).changed, true);
  });

  test('a malformed file grants nothing and is never overwritten', async () => {
    const root = await tempStore();
    const store = new PolicyStore(root);
    await store.grant({ identity: 'alice', permission: 'read', layer: { id: 4 }, grantedBy: 'root' });
    await fs.writeFile(store.file, '{"generation": "x"');
    const fresh = new PolicyStore(root);
    const snap = await fresh.current();
    assert.match(snap.problem?.message ?? '', /policy file .*not valid JSON/);
    assert.equal(snap.index.access('alice', { id: 4 }).read, false);
    await assert.rejects(fresh.grant({ identity: 'bob', permission: 'read', layer: { id: 4 }, grantedBy: 'root' }), /not valid JSON/);
    assert.equal(await fs.readFile(store.file, 'utf8'), '{"generation": "x"');
  });

  test('enforcement: marked once, kept by every change and by the file; an unauthenticated store then changes nothing', async () => {
    const root = await tempStore();
    const open = new PolicyStore(root, { unauthenticated: true });
    assert.equal(await open.storeEnforced(), false);
    // An open store is changed by anyone, as before enforcement existed; its first grant is what enforces it.
    await open.grant({ identity: 'alice', permission: 'read', layer: { id: 1 }, grantedBy: '' });
    assert.equal(await open.storeEnforced(), true);
    await assert.rejects(open.revoke({ identity: 'alice', permission: 'read', layer: { id: 1 } }), /enforces access control/);
    const enforcing = new PolicyStore(root);
    await enforcing.revoke({ identity: 'alice', permission: 'read', layer: { id: 1 } });
    assert.equal(await enforcing.markEnforced(), true);
    assert.equal(await enforcing.markEnforced(), false, 'marked once');
    await enforcing.grant({ identity: 'bob', permission: 'read', layer: { id: 2 }, grantedBy: 'ops' });
    const text = await fs.readFile(enforcing.file, 'utf8');
    const policy = parsePolicyFile(text, enforcing.file);
    assert.ok(policy.enforcedSinceMs !== undefined && isEnforcedPolicy(policy), text);
    assert.equal(serialisePolicyFile(policy), text);
    assert.equal(await open.storeEnforced(), true);
    for (const change of [
      () => open.grant({ identity: 'anyone', permission: 'admin', layer: { prefix: '' }, grantedBy: '' }),
      () => open.revoke({ identity: 'bob', permission: 'read', layer: { id: 2 } }),
      () => open.refuseUnenforcedWrite(),
    ]) {
      await assert.rejects(change(), (err: unknown) => err instanceof StrataError && err.code === GrpcCode.PERMISSION_DENIED && /enforces access control/.test(err.message));
    }
    assert.equal(await fs.readFile(enforcing.file, 'utf8'), text);
    // Grants alone (a store from before the mark) are enforcement too.
    assert.ok(isEnforcedPolicy({ generation: 1, updateTimeMs: 1, grants: policy.grants }));
    assert.equal(isEnforcedPolicy({ generation: 3, updateTimeMs: 1, grants: [] }), false);
  });

  test('read-only: nothing is changed, whatever the store', async () => {
    const root = await tempStore();
    const ro = new PolicyStore(root, { unauthenticated: true, readOnly: true });
    await assert.rejects(ro.grant({ identity: 'a', permission: 'read', layer: { id: 1 }, grantedBy: '' }), /read-only/);
    await assert.rejects(ro.refuseUnenforcedWrite(), /read-only/);
  });
});
