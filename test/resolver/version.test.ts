import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, freePort, startRedis, startResolver, strata, waitFor, type ResolverProcess } from '@strata/harness';
import { CertDir } from '../support/certs';
import { makeStore, type StoreFixture } from '../support/store-fixture';

/**
 * Issue 23 item 7: which build runs where. The version is the root
 * package.json's; the client says its own, and through the API that of each
 * resolver it reaches (a plaintext one and a mutual-TLS one here), with
 * address and round trip; the resolver says it when it is ready.
 */

interface VersionDoc {
  client: { version: string; commit?: string; node: string };
  resolvers: { address: string; version?: string; node?: string; latencyMs?: number; error?: string }[];
}

const pkgVersion = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

describe('versions', () => {
  let fx: StoreFixture;
  let certs: CertDir;
  let plain: ResolverProcess;
  let mutual: ResolverProcess;

  before(async () => {
    certs = new CertDir('strata-version-');
    certs.makeCa('ca');
    certs.makeLeaf('server', 'ca', 'resolver', 100, 'IP:127.0.0.1');
    certs.makeLeaf('ops', 'ca', 'ops', 101);
    fx = await makeStore([{ entries: [{ type: 'file', path: '/etc/hostname', content: 'v\n' }] }]);
    const other = await makeStore([{ entries: [{ type: 'file', path: '/etc/hostname', content: 'w\n' }] }]);
    plain = await startResolver({ store: fx.store });
    // Another store: a plaintext and an enforcing replica do not share one (issue 23 item 1).
    mutual = await startResolver({ store: other.store, extra: [...certs.serverArgs('server'), '--admin', 'ops'] });
    const cleanup = fx.cleanup;
    fx.cleanup = () => {
      cleanup();
      other.cleanup();
    };
  });

  after(async () => {
    await plain?.stop();
    await mutual?.stop();
    fx?.cleanup();
    certs?.remove();
  });

  test('strata --version is the root package.json version, with node', () => {
    const r = strata(['--version']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${pkgVersion.replace(/\./g, '\\.')} \\((commit [0-9a-f]{12}, )?node ${process.versions.node.replace(/\./g, '\\.')}\\)\\n$`));
  });

  test('resolver.listening carries version and node', () => {
    for (const r of [plain, mutual]) {
      const ready = r.logs.find((l) => l.event === 'resolver.listening');
      assert.equal(ready?.version, pkgVersion);
      assert.equal(ready?.node, process.versions.node);
    }
  });

  test('strata version: the client and each resolver it reaches, with address and round trip; text and --json', () => {
    const plainJson = strata(['--resolver', plain.address, 'version', '--json']);
    assert.equal(plainJson.status, 0, plainJson.stderr);
    const doc = JSON.parse(plainJson.stdout) as VersionDoc;
    assert.equal(doc.client.version, pkgVersion);
    assert.equal(doc.resolvers.length, 1);
    assert.equal(doc.resolvers[0].address, plain.address);
    assert.equal(doc.resolvers[0].version, pkgVersion);
    assert.equal(doc.resolvers[0].node, process.versions.node);
    assert.ok((doc.resolvers[0].latencyMs ?? -1) >= 0);
    // Under mutual TLS, with the client's certificate.
    const tls = strata(['--resolver', mutual.address, ...certs.cliArgs('ca', 'ops'), 'version']);
    assert.equal(tls.status, 0, tls.stderr);
    assert.match(tls.stdout, new RegExp(`^client ${pkgVersion.replace(/\./g, '\\.')} .*\\nresolver ${mutual.address.replace(/\./g, '\\.')}  ${pkgVersion.replace(/\./g, '\\.')} \\(.*node ${process.versions.node.replace(/\./g, '\\.')}\\)  [0-9.]+ ms\\n$`));
  });

  test('a resolver that does not answer: the others are still shown, then exit 1 naming it', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const r = strata(['--resolver', `${plain.address},${dead}`, '--timeout', '3', 'version', '--json']);
    assert.equal(r.status, 1);
    const doc = JSON.parse(r.stdout) as VersionDoc;
    assert.deepEqual(doc.resolvers.map((x) => [x.address, x.version ?? null, x.error !== undefined]), [
      [plain.address, pkgVersion, false],
      [dead, null, true],
    ]);
    assert.match(r.stderr, new RegExp(`did not answer: ${dead.replace(/\./g, '\\.')}`));
  });

  test('each resolver says whether its Redis cache answers (what strata status shows)', async () => {
    const redis = await startRedis();
    const withRedis = await startResolver({ store: fx.store, redis: redis.url });
    try {
      type Doc = { resolvers: { metadataCache?: { kind: string; reachable: boolean; detail: string } }[] };
      const ask = (): Doc => JSON.parse(strata(['version', '--json'], { STRATA_RESOLVER: `${withRedis.address},${plain.address}` }).stdout) as Doc;
      const up = ask();
      assert.deepEqual(up.resolvers.map((r) => [r.metadataCache?.kind, r.metadataCache?.reachable]), [['redis', true], ['in-process', true]]);
      await redis.stop();
      await waitFor('the resolver to see its Redis gone', () => (ask().resolvers[0].metadataCache?.reachable === false ? true : undefined), 20_000);
    } finally {
      await withRedis.stop();
      await redis.stop().catch(() => undefined);
    }
  });
});
