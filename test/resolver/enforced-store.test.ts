import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { GrpcCode, StrataError } from '@strata/errors';
import { startResolver, type ResolverProcess } from '@strata/harness';
import { CertDir } from '../support/certs';
import { makeStore, type StoreFixture } from '../support/store-fixture';

/**
 * Issue 23 item 1: one store, replicas with and without mutual TLS, as real
 * processes. Once a replica with --tls-client-ca has served the store (or
 * its policy has grants), a replica that cannot tell its callers apart
 * either does not start or, told --unenforced-read-only, changes nothing;
 * one that was already running when the store became enforced refuses
 * every change from then on.
 */

const OPS = 'spiffe://strata.test/ops';

let certs: CertDir;
const stores: StoreFixture[] = [];
const running: ResolverProcess[] = [];
const clients: StrataClient[] = [];

async function resolver(store: string, extra: string[] = []): Promise<ResolverProcess> {
  const r = await startResolver({ store, extra });
  running.push(r);
  return r;
}

function client(r: ResolverProcess, mutual: boolean): StrataClient {
  const c = new StrataClient({ resolver: r.address, deadlineMs: 5000, ...(mutual ? { tls: certs.clientTls('ops') } : {}) });
  clients.push(c);
  return c;
}

async function store(): Promise<StoreFixture> {
  const fx = await makeStore([{ entries: [{ type: 'file', path: '/etc/hostname', content: 'base\n' }] }]);
  stores.push(fx);
  return fx;
}

/** Refused as an unauthenticated change: PERMISSION_DENIED naming the store's enforcement. */
async function refusedChange(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StrataError, String(err));
    assert.equal(err.code, GrpcCode.PERMISSION_DENIED, err.message);
    return err.message;
  }
  assert.fail('the change went through');
}

const layerFiles = (fx: StoreFixture): string[] => fs.readdirSync(path.join(fx.store, '.strata', 'catalog', 'layers')).sort();
const policyText = (fx: StoreFixture): string => fs.readFileSync(path.join(fx.store, '.strata', 'catalog', 'policy.json'), 'utf8');

before(() => {
  certs = new CertDir('strata-enforced-');
  certs.makeCa('ca');
  certs.makeLeaf('server', 'ca', 'resolver', 100, 'IP:127.0.0.1');
  certs.makeLeaf('ops', 'ca', 'operator', 101, `URI:${OPS}`);
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(running.map((r) => r.stop()));
  for (const fx of stores) fx.cleanup();
  certs?.remove();
});

describe('a store enforced by a mutual-TLS replica', () => {
  test('a plaintext replica started after it refuses to start, saying why and what to do', async () => {
    const fx = await store();
    const mtls = await resolver(fx.store, [...certs.serverArgs('server'), '--admin', OPS]);
    assert.ok(mtls.logs.some((l) => l.event === 'resolver.store_enforced' && l.level === 'warn'));
    assert.match(policyText(fx), /"enforcedSinceMs"/);
    await assert.rejects(resolver(fx.store), (err: Error) => {
      assert.match(err.message, /enforces access control/);
      assert.match(err.message, /--tls-client-ca/);
      assert.match(err.message, /--unenforced-read-only/);
      return true;
    });
    // TLS without client certificates does not know its callers either.
    await assert.rejects(resolver(fx.store, ['--tls-cert', certs.file('server.crt'), '--tls-key', certs.file('server.key')]), /enforces access control/);
  });

  test('--unenforced-read-only: it serves reads, warns, and refuses layer create and grant; nothing reaches the store', async () => {
    const fx = await store();
    const mtls = await resolver(fx.store, [...certs.serverArgs('server'), '--admin', OPS]);
    const ro = await resolver(fx.store, ['--unenforced-read-only']);
    assert.ok(ro.logs.some((l) => l.event === 'resolver.unenforced_read_only' && l.level === 'warn'));
    assert.ok(ro.logs.some((l) => l.event === 'resolver.access_control' && l.enforced === false && l.level === 'warn'));
    const anyone = client(ro, false);
    const top = { id: fx.layers[0].layerId };
    assert.equal((await anyone.readFile(top, '/etc/hostname')).toString(), 'base\n');
    const layersBefore = layerFiles(fx);
    const policyBefore = policyText(fx);
    assert.match(await refusedChange(anyone.createLayer({ source: fx.layers[0].source, name: 'intruder' })), /read-only/);
    assert.match(await refusedChange(anyone.grant('anyone', 'admin', { prefix: '' })), /read-only/);
    assert.match(await refusedChange(anyone.updateLayer(top, { name: 'renamed' })), /read-only/);
    assert.match(await refusedChange(anyone.deleteLayer(top)), /read-only/);
    assert.deepEqual(layerFiles(fx), layersBefore);
    assert.equal(policyText(fx), policyBefore);
    // The enforcing replica still changes it, for its administrator.
    const ops = client(mtls, true);
    const made = await ops.createLayer({ source: fx.layers[0].source, name: 'by-ops' });
    assert.equal(made.name, 'by-ops');
  });

  test('a plaintext replica already running when the store becomes enforced refuses every change from then on', async () => {
    const fx = await store();
    const early = await resolver(fx.store);
    const anyone = client(early, false);
    // Before enforcement the open store is changed as before.
    const made = await anyone.createLayer({ source: fx.layers[0].source, name: 'before' });
    await resolver(fx.store, [...certs.serverArgs('server'), '--admin', OPS]);
    const layersBefore = layerFiles(fx);
    const policyBefore = policyText(fx);
    assert.match(await refusedChange(anyone.createLayer({ source: fx.layers[0].source, name: 'intruder' })), /enforces access control/);
    assert.match(await refusedChange(anyone.grant('anyone', 'admin', { prefix: '' })), /enforces access control/);
    assert.match(await refusedChange(anyone.updateLayer({ id: made.layerId }, { name: 'renamed' })), /enforces access control/);
    assert.match(await refusedChange(anyone.deleteLayer({ id: made.layerId })), /enforces access control/);
    assert.deepEqual(layerFiles(fx), layersBefore);
    assert.equal(policyText(fx), policyBefore);
    // Reads go on.
    assert.equal((await anyone.getLayer({ name: 'before' })).layer.layerId, made.layerId);
  });

  test('a store whose policy has grants (from before enforcement was recorded) is enforced too', async () => {
    const fx = await store();
    const policy = { generation: 1, updateTimeMs: 1, grants: [{ identity: OPS, permission: 'admin', layer: { prefix: '' }, grantedBy: OPS, createTimeMs: 1 }] };
    fs.mkdirSync(path.join(fx.store, '.strata', 'catalog'), { recursive: true });
    fs.writeFileSync(path.join(fx.store, '.strata', 'catalog', 'policy.json'), JSON.stringify(policy));
    await assert.rejects(resolver(fx.store), /enforces access control/);
  });
});
