import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Metadata, credentials, loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { StrataClient } from '@strata/client';
import { Projection, diff as engineDiff } from '@strata/traversal';
import { REPO, startResolver, type ResolverProcess } from '@strata/harness';
import { apiTreeSource } from '../support/api-tree-source';
import { mainStack } from '../support/main-fixture';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { ALL_FIELDS, compareTrees, readEngineTree } from '../support/tree-snapshot';

let fx: StoreFixture;
let resolver: ResolverProcess;
let client: StrataClient;

before(async () => {
  fx = await makeStore(mainStack(), 'trusted');
  resolver = await startResolver({ store: fx.store });
  client = new StrataClient({ resolver: resolver.address });
});

after(async () => {
  client?.close();
  const code = await resolver?.stop();
  fx?.cleanup();
  assert.equal(code, 0, 'resolver exits 0 on SIGTERM');
});

describe('resolver API against the engine on the same layers', () => {
  test('every path of every chain: walk, stat fields, xattrs, link targets, contents', async () => {
    for (let top = 1; top < fx.layers.length; top++) {
      const engine = new Projection(fx.rootsTopFirst.slice(fx.layers.length - 1 - top));
      const expected = await readEngineTree(engine);
      const actual = await readEngineTree(apiTreeSource(client, { id: fx.layers[top].layerId }));
      assert.ok(expected.size > 10);
      assert.deepEqual(compareTrees(expected, actual, ALL_FIELDS), [], `chain of layer ${top}`);
    }
  });

  test('stat by name and by id agree; ReadDir pages cover the listing exactly once', async () => {
    const top = fx.layers[fx.layers.length - 1];
    assert.deepEqual(await client.stat({ name: top.name }, '/etc/hostname'), await client.stat({ id: top.layerId }, '/etc/hostname'));
    const engine = new Projection(fx.rootsTopFirst);
    const want = (await engine.readdir('/etc')).map((e) => e.name.toString('latin1'));
    const got: string[] = [];
    let offset = 0;
    for (;;) {
      const page = await client.readDirPage({ id: top.layerId }, '/etc', offset, 2);
      assert.ok(page.entries.length <= 2);
      got.push(...page.entries.map((e) => e.name.toString('latin1')));
      offset += page.entries.length;
      assert.equal(page.dirAttr?.ino, (await engine.stat('/etc')).ino);
      if (page.eof) break;
    }
    assert.deepEqual(got, want);
  });

  test('Diff streams what the engine computes, in the same order', async () => {
    const [a, b] = [fx.layers[0], fx.layers[fx.layers.length - 1]];
    const want = [];
    const pa = new Projection(fx.rootsTopFirst.slice(fx.layers.length - 1));
    const pb = new Projection(fx.rootsTopFirst);
    for await (const batch of engineDiff(pa, pb)) want.push(...batch.map((c) => `${c.kind} ${c.path.toString('latin1')}`));
    const got = [];
    for await (const batch of client.diff({ id: a.layerId }, { id: b.layerId })) got.push(...batch.map((c) => `${c.kind} ${c.path.toString('latin1')}`));
    assert.ok(want.length > 5);
    assert.deepEqual(got, want);
  });

  test('Read streams a range in chunks with the right offsets', async () => {
    const top = { id: fx.layers[fx.layers.length - 1].layerId };
    const content = fs.readFileSync(path.join(fx.rootsTopFirst[fx.rootsTopFirst.length - 1], 'etc/passwd'));
    const chunks = [];
    for await (const c of client.read(top, '/etc/passwd', 5, 7)) chunks.push(c);
    assert.deepEqual(Buffer.concat(chunks), content.subarray(5, 12));
  });

  test('grpc.health.v1 says SERVING and reflection lists the strata services', async () => {
    const health = loadPackageDefinition(
      protoLoader.loadSync(path.join(REPO, 'node_modules/grpc-health-check/proto/health/v1/health.proto'), { enums: String }),
    ) as GrpcObject;
    const Health = ((health.grpc as GrpcObject).health as GrpcObject).v1 as GrpcObject;
    const hc = new (Health.Health as ServiceClientConstructor)(resolver.address, credentials.createInsecure());
    const status = await new Promise<{ status: string }>((resolve, reject) =>
      hc.check({ service: 'strata.v1.ProjectionService' }, (err: Error | null, res: { status: string }) => (err ? reject(err) : resolve(res))),
    );
    assert.equal(status.status, 'SERVING');
    hc.close();

    const refl = loadPackageDefinition(
      protoLoader.loadSync(path.join(REPO, 'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto')),
    ) as GrpcObject;
    const R = ((refl.grpc as GrpcObject).reflection as GrpcObject).v1alpha as GrpcObject;
    const rc = new (R.ServerReflection as ServiceClientConstructor)(resolver.address, credentials.createInsecure());
    const stream = rc.ServerReflectionInfo(new Metadata());
    const names = await new Promise<string[]>((resolve, reject) => {
      stream.on('data', (res: { listServicesResponse?: { service: { name: string }[] } }) => {
        resolve((res.listServicesResponse?.service ?? []).map((s) => s.name));
        stream.end();
      });
      stream.on('error', reject);
      stream.write({ listServices: '*' });
    });
    rc.close();
    for (const s of ['strata.v1.LayerService', 'strata.v1.ProjectionService', 'strata.v1.SessionService', 'strata.v1.DiffService']) {
      assert.ok(names.includes(s), `${s} in ${names.join(', ')}`);
    }
  });
});
