import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { Catalog } from '@strata/layers';
import { ExtentMapRequest, ExtentMapResponse, layerRefToProto } from '@strata/protocol';
import { createLogger } from '@strata/telemetry';
import { Chains } from '../chains';
import { ExtentMaps } from '../extent/extent-maps';
import { StoreIdentityFile } from '../extent/store-identity';
import { RequestTracker } from '../observability/request-tracker';
import { extentService } from './extent-service';

const log = createLogger({ service: 'test', level: 'silent' });

test('ExtentMap with siblings: one call answers the maps of the directory, through the wire', async () => {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-extent-service-')));
  try {
    fs.mkdirSync(path.join(store, 'l/d'), { recursive: true });
    for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(store, 'l/d', `f${i}`), `body ${i}`);
    fs.mkdirSync(path.join(store, 'l/e'));
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(store, 'l/e', `g${i}`), `next ${i}`);
    const catalog = new Catalog(store);
    await catalog.init();
    await catalog.create({ source: 'dir:l', layerType: 'base', name: 'l' });
    const chains = new Chains(catalog);
    try {
      const svc = extentService(new ExtentMaps((ref) => chains.view(ref), store), new StoreIdentityFile(store), { log, tracker: new RequestTracker(log) });
      const ask = (siblings: number | undefined, beyondDirectory?: boolean): Promise<ExtentMapResponse> =>
        new Promise((resolve, reject) => {
          const request: ExtentMapRequest = { layer: layerRefToProto({ name: 'l' }), path: Buffer.from('/d/f3'), offset: 0, length: 0, siblings, beyondDirectory };
          // Through the wire both ways, as a client would send and read it.
          const call = { request: ExtentMapRequest.decode(ExtentMapRequest.encode(request).finish()), metadata: { getMap: () => ({}) } } as unknown as ServerUnaryCall<ExtentMapRequest, ExtentMapResponse>;
          svc.extentMap(call, (err, res) => (err || !res ? reject(err ?? new Error('no answer')) : resolve(ExtentMapResponse.decode(ExtentMapResponse.encode(res).finish()))));
        });
      const m = await ask(4);
      assert.deepEqual(m.files.map((f) => f.path), ['l/d/f3']);
      assert.deepEqual(m.siblings.map((s) => s.path.toString()), ['/d/f4', '/d/f5', '/d/f6', '/d/f7']);
      for (const s of m.siblings) {
        assert.ok(s.map);
        assert.equal(s.map.storeId, m.storeId);
        assert.deepEqual(s.map.files.map((f) => f.path), [`l${s.path.toString()}`]);
        assert.equal(s.map.attr?.size, fs.statSync(path.join(store, `l${s.path.toString()}`)).size);
        assert.deepEqual([s.map.offset, s.map.length, s.map.eof, s.map.extents.length], [0, s.map.attr?.size, true, 1]);
      }
      // Unset (an older agent): no siblings, the answer as before.
      assert.deepEqual((await ask(undefined)).siblings, []);
      // beyond_directory: the directory's files after the one asked (a walk in order read those before), then the next directory (/e)
      // whole; unset or false, the directory only, wrapping around.
      const d = ['/d/f4', '/d/f5', '/d/f6', '/d/f7', '/d/f8', '/d/f9', '/d/f0', '/d/f1', '/d/f2'];
      assert.deepEqual((await ask(20, true)).siblings.map((s) => s.path.toString()), [...d.slice(0, 6), '/e/g0', '/e/g1', '/e/g2']);
      assert.deepEqual((await ask(20, false)).siblings.map((s) => s.path.toString()), d);
      assert.deepEqual((await ask(20)).siblings.map((s) => s.path.toString()), d);
      assert.deepEqual((await ask(undefined, true)).siblings, []);
    } finally {
      chains.close();
    }
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
});
