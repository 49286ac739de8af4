import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { ExtentMap, StoreIdentity } from '@strata/client';
import { FuseSession } from '@strata/fuse-kernel';
import type { LayerRef } from '@strata/layers';
import type { Attr, DirEntry } from '@strata/protocol';
import { createLogger } from '@strata/telemetry';
import { kernelHandlers, LARGE_FILE } from '../kernel/kernel-handlers';
import { NodeTable } from '../kernel/node-table';
import type { MountFs } from '../mount/mount-fs';
import { OpTracker } from '../observability/op-tracker';
import { MountedStore, mountSkip, testAttr } from './mounted-store';
import { StoreView, type StoreViewClient } from './store-view';

/**
 * Through a real FUSE mount where the kernel opens files itself: a large
 * `dir:` file named by its directory's listing is handed over before any
 * READ of it, so another process's random reads of it — the first one
 * included — never reach JavaScript and come exact; a small file of the
 * same listing is still handed over at its first READ.
 */

const run = promisify(execFile);
const skip = mountSkip;

let fixture: MountedStore;
let store: string;
let mnt: string;
const big = randomBytes(3 * LARGE_FILE + 12_345);
const small = randomBytes(5000);
const files: Record<string, Buffer> = { '/big.img': big, '/small': small };

const maps: string[] = [];
const client: StoreViewClient = {
  async storeIdentity(): Promise<StoreIdentity> {
    return fixture.identity();
  },
  async extentMap(_ref: LayerRef, p: Buffer, offset: number): Promise<ExtentMap> {
    maps.push(p.toString());
    return fixture.wholeFileMap(`layer${p.toString()}`, 2, offset);
  },
};

before(() => {
  if (skip) return;
  fixture = new MountedStore('strata-large-ahead', Object.fromEntries(Object.entries(files).map(([p, bytes]) => [`layer${p}`, bytes])));
  store = fixture.dir;
  mnt = fixture.mnt;
});

after(() => {
  if (skip) return;
  fixture.remove();
});

test('kernel opens: a large file named by a listing is served without JavaScript from its first READ', { skip }, async (t) => {
  const view = await StoreView.open(store, client);
  const jsReads: string[] = [];
  const attrOf = (p: string): Attr | undefined => (p === '/' ? testAttr(1, 0o40755, 0) : files[p] ? testAttr(p === '/big.img' ? 2 : 3, 0o100644, files[p].length) : undefined);
  const entries: DirEntry[] = Object.keys(files).map((p) => ({ name: Buffer.from(p.slice(1)), attr: attrOf(p) }));
  const mfs = {
    tapChunks: () => undefined,
    readSized: async (p: Buffer, pos: number, len: number) => ({ data: files[p.toString()].subarray(pos, pos + len), size: files[p.toString()].length }),
    stat: async (p: Buffer) => attrOf(p.toString()) ?? Promise.reject(Object.assign(new Error('no such file'), { errno: -2 })),
    readdir: async () => ({ dir: testAttr(1, 0o40755, 0), entries }),
  } as unknown as MountFs;
  const nodes = new NodeTable();
  const box: { session?: FuseSession } = {};
  const served = kernelHandlers(
    mfs,
    nodes,
    new OpTracker(1, undefined, createLogger({ service: 'test', level: 'silent' })),
    { kernelSeconds: 60, cacheTtl: Infinity },
    { cacheXattrs: () => undefined, setFileData: (ino, fd) => box.session?.setFileData(ino, fd) },
    undefined,
    view.reader({ id: 1 }),
    { kernelOpens: true },
  );
  const handlers = {
    ...served,
    read: (...args: Parameters<typeof served.read>) => {
      jsReads.push(nodes.keyOf(args[0]));
      return served.read(...args);
    },
  };
  const session = (box.session = await FuseSession.mount(mnt, handlers, { rootAttr: { mode: 0o40755, nlink: 2 }, kernelOpens: true, keepCache: true }));
  try {
    if (!session.kernelOpens) return t.skip('the kernel did not offer FUSE_NO_OPEN_SUPPORT');
    // As Mount.create does with the root's listing.
    served.listed('/', entries);
    for (let i = 0; i < 400 && session.stats().fileData < 1; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(session.stats().fileData, 1, 'the large file was handed over before any READ');
    assert.deepEqual(maps, ['/big.img'], 'the small file is not mapped ahead');
    // Random reads from another process, the first one included, served by the session's preads.
    const offsets = [big.length - 100, 0, 1_234_567, LARGE_FILE * 2 + 3];
    const script = `const fs=require('fs');const fd=fs.openSync(process.argv[1],'r');const out=[];for(const o of ${JSON.stringify(offsets)}){const b=Buffer.alloc(100);const n=fs.readSync(fd,b,0,100,o);out.push(b.subarray(0,n).toString('hex'));}process.stdout.write(JSON.stringify(out));`;
    const { stdout } = await run(process.execPath, ['-e', script, path.join(mnt, 'big.img')], { timeout: 30_000, encoding: 'utf8' });
    const got = JSON.parse(stdout) as string[];
    offsets.forEach((o, i) => assert.equal(got[i], big.subarray(o, o + 100).toString('hex'), `bytes at ${o}`));
    assert.equal(jsReads.length, 0, `READs that reached JavaScript: ${jsReads.join(' ')}`);
    assert.ok(session.stats().preadReads > 0);
    // The small file: at its first READ, as before.
    const { stdout: sum } = await run('sha256sum', [path.join(mnt, 'small')], { timeout: 30_000, encoding: 'utf8' });
    assert.equal(sum.split(' ')[0], createHash('sha256').update(small).digest('hex'));
    assert.ok(jsReads.includes('/small'));
    assert.deepEqual(maps.sort(), ['/big.img', '/small']);
  } finally {
    await session.unmount();
    await view.close();
  }
});
