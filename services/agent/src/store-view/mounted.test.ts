import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { ExtentMap, StoreIdentity } from '@strata/client';
import { FuseSession } from '@strata/fuse-kernel';
import type { LayerRef } from '@strata/layers';
import { createLogger } from '@strata/telemetry';
import { kernelHandlers } from '../kernel/kernel-handlers';
import { NodeTable } from '../kernel/node-table';
import type { MountFs } from '../mount/mount-fs';
import { OpTracker } from '../observability/op-tracker';
import { MountedStore, mountSkip, testAttr } from './mounted-store';
import { StoreView, type StoreViewClient } from './store-view';

/**
 * Through a real FUSE mount: a `dir:` file read by another process comes
 * whole and exact, and after its first READ the kernel's READs of it are
 * served without JavaScript (FUSE passthrough, or the session's preads of
 * the store file the view opened and checked).
 */

const run = promisify(execFile);
const skip = mountSkip;
/** STRATA_STORE_VIEW_MIB sets the file's size (24 MiB by default). */
const SIZE = Number(process.env.STRATA_STORE_VIEW_MIB ?? 24) << 20;

let fixture: MountedStore;
let store: string;
let mnt: string;
const content = randomBytes(SIZE);

const client: StoreViewClient = {
  async storeIdentity(): Promise<StoreIdentity> {
    return fixture.identity();
  },
  async extentMap(_ref: LayerRef, p: Buffer, offset: number): Promise<ExtentMap> {
    assert.equal(p.toString(), '/file');
    return fixture.wholeFileMap('layer/file', 2, offset);
  },
};

before(() => {
  if (skip) return;
  fixture = new MountedStore('strata-mounted-view', { 'layer/file': content });
  store = fixture.dir;
  mnt = fixture.mnt;
});

after(() => {
  if (skip) return;
  fixture.remove();
});

test('a dir: file read through a mount: exact, and served without JavaScript after its first READ', { skip }, async (t) => {
  const view = await StoreView.open(store, client);
  let jsReads = 0;
  let handovers = 0;
  const mfs = {
    tapChunks: () => undefined,
    readView: async (_p: Buffer, pos: number, len: number) => content.subarray(pos, pos + len),
    readSized: async (_p: Buffer, pos: number, len: number) => ({ data: content.subarray(pos, pos + len), size: content.length }),
    stat: async (p: Buffer) => (p.toString() === '/' ? testAttr(1, 0o40755, 0) : p.toString() === '/file' ? testAttr(2, 0o100644, SIZE) : Promise.reject(Object.assign(new Error('no such file'), { errno: -2 }))),
  } as unknown as MountFs;
  const nodes = new NodeTable();
  // The session exists only once mounted; the handlers reach it through this.
  const box: { session?: FuseSession } = {};
  const served = kernelHandlers(
    mfs,
    nodes,
    new OpTracker(1, undefined, createLogger({ service: 'test', level: 'silent' })),
    { kernelSeconds: 60, cacheTtl: Infinity },
    { cacheXattrs: () => undefined, setFileData: (ino, fd) => {
        handovers++;
        return box.session?.setFileData(ino, fd);
      },
    },
    undefined,
    view.reader({ id: 1 }),
  );
  const handlers = {
    ...served,
    read: (...args: Parameters<typeof served.read>) => {
      jsReads++;
      return served.read(...args);
    },
  };
  const session = (box.session = await FuseSession.mount(mnt, handlers, { rootAttr: { mode: 0o40755, nlink: 2 } }));
  try {
    const sum = async (): Promise<string> => (await run('sha256sum', [path.join(mnt, 'file')], { timeout: 60_000, encoding: 'utf8' })).stdout.split(' ')[0];
    const expected = createHash('sha256').update(content).digest('hex');
    assert.equal(await sum(), expected);
    const afterFirst = jsReads;
    const stats = session.stats();
    assert.equal(stats.fileData, 1);
    assert.equal(handovers, 1);
    // By pread the session serves the open file too: a few READs of readahead at most came here first.
    if (!stats.passthrough) assert.ok(afterFirst <= 4, `${afterFirst} READs reached JavaScript`);
    // Opened again, from a cold page cache: the kernel (passthrough) or the session's preads, not JavaScript.
    await run('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { timeout: 60_000 }).catch(() => undefined);
    assert.equal(await sum(), expected);
    assert.equal(jsReads, afterFirst);
    assert.equal(handovers, 1);
    assert.ok(stats.passthrough || session.stats().preadReads > 0, JSON.stringify(session.stats()));
    // Sequential rates from a cold page cache: the store file by the kernel alone, and through the mount.
    const rate = async (file: string): Promise<number> => {
      await run('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { timeout: 60_000 }).catch(() => undefined);
      const started = performance.now();
      await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'], { timeout: 120_000 });
      return SIZE / 1e6 / ((performance.now() - started) / 1000);
    };
    const kernel = await rate(path.join(store, 'layer/file'));
    const mounted = await rate(path.join(mnt, 'file'));
    assert.equal(jsReads, afterFirst);
    t.diagnostic(`cold sequential ${SIZE >> 20} MiB: store file ${kernel.toFixed(0)} MB/s, through the mount ${mounted.toFixed(0)} MB/s (${stats.passthrough ? 'passthrough' : 'pread'})`);
  } finally {
    await session.unmount();
    await view.close();
  }
});
