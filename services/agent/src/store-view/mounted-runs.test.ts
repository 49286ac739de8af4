import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { ExtentMap, FileExtent, StoreIdentity } from '@strata/client';
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
 * Through a real FUSE mount (the kernel opening files itself, as the
 * agent's --file-opens auto has it): an image layer's file — DATA runs of
 * base.qcow2 and snapshot.qcow2 and holes, mapped in windows — is handed to
 * the session as runs at its first READ, reads exact, and no later READ of
 * it reaches JavaScript; a file with an unmapped run, and one whose store
 * file fails its check, stay on the JavaScript path and read exact too.
 */

const run = promisify(execFile);
const skip = mountSkip;

/** A map answers this much at most (the resolver's is 64 MiB): the file takes several windows. */
const WINDOW = 1 << 20;
const base = randomBytes(3 << 20);
const snapshot = randomBytes(2 << 20);

type Run = { length: number; file?: 0 | 1; at?: number; unmapped?: boolean };
/** Odd lengths and offsets, runs crossing window boundaries, both store files, holes. */
const IMAGE: Run[] = [
  { length: 65_536, file: 0, at: 0 },
  { length: 700_001, file: 1, at: 4096 },
  { length: 300_000 },
  { length: 1_200_003, file: 0, at: 1_000_000 },
  { length: 4096, file: 1, at: 1_900_000 },
  { length: 9_999 },
  { length: 800_000, file: 0, at: 2_200_000 },
];
const COMPRESSED: Run[] = [{ length: 100_000, file: 0, at: 0 }, { length: 50_000, unmapped: true }, { length: 100_000, file: 1, at: 0 }];

function bytesOf(runs: Run[]): Buffer {
  return Buffer.concat(runs.map((r) => (r.file === undefined ? Buffer.alloc(r.length) : (r.file === 0 ? base : snapshot).subarray(r.at ?? 0, (r.at ?? 0) + r.length))));
}
const FILES: Record<string, { runs: Run[]; bytes: Buffer; ino: number }> = {
  '/disk/image': { runs: IMAGE, bytes: bytesOf(IMAGE), ino: 3 },
  '/disk/compressed': { runs: COMPRESSED, bytes: bytesOf(COMPRESSED), ino: 4 },
  '/disk/swapped': { runs: IMAGE, bytes: bytesOf(IMAGE), ino: 5 },
};

let fixture: MountedStore;
let store: string;
let mnt: string;

/** The window of a file's map from offset: its runs cut at the window's bounds. */
function windowOf(name: string, offset: number): ExtentMap {
  const f = FILES[name];
  const size = f.bytes.length;
  const end = Math.min(size, offset + WINDOW);
  const ids = [fixture.identityOf('vm/base.qcow2'), fixture.identityOf('vm/snapshot.qcow2')];
  if (name === '/disk/swapped') ids[1] = { ...ids[1], ino: ids[1].ino + 1 };
  const extents: FileExtent[] = [];
  let at = 0;
  for (const r of f.runs) {
    const from = Math.max(at, offset);
    const to = Math.min(at + r.length, end);
    if (from < to) {
      if (r.unmapped) extents.push({ kind: 'unmapped', offset: from, length: to - from, reason: 'compressed' });
      else if (r.file === undefined) extents.push({ kind: 'hole', offset: from, length: to - from });
      else extents.push({ kind: 'data', offset: from, length: to - from, file: r.file, fileOffset: (r.at ?? 0) + (from - at) });
    }
    at += r.length;
  }
  return { storeId: fixture.storeId, attr: testAttr(f.ino, 0o100644, size), files: ids, extents, offset, length: end - offset, eof: end >= size };
}

const client: StoreViewClient = {
  async storeIdentity(): Promise<StoreIdentity> {
    return fixture.identity();
  },
  async extentMap(_ref: LayerRef, p: Buffer, offset: number): Promise<ExtentMap> {
    return windowOf(p.toString(), offset);
  },
};

before(() => {
  if (skip) return;
  fixture = new MountedStore('strata-runs-view', { 'vm/base.qcow2': base, 'vm/snapshot.qcow2': snapshot });
  store = fixture.dir;
  mnt = fixture.mnt;
});

after(() => {
  if (skip) return;
  fixture.remove();
});

test('an image layer file read through a mount: handed over as runs at its first READ, exact, no later READ in JavaScript', { skip }, async () => {
  const view = await StoreView.open(store, client);
  const jsReads = new Map<string, number>();
  let registrations = 0;
  const mfs = {
    tapChunks: () => undefined,
    readView: async (p: Buffer, pos: number, len: number) => FILES[p.toString()].bytes.subarray(pos, pos + len),
    readSized: async (p: Buffer, pos: number, len: number) => {
      const b = FILES[p.toString()].bytes;
      return { data: b.subarray(pos, pos + len), size: b.length };
    },
    readdir: async () => ({ dir: testAttr(2, 0o40755, 0), entries: [] }),
    stat: async (p: Buffer) => {
      const s = p.toString();
      if (s === '/' || s === '/disk') return testAttr(s === '/' ? 1 : 2, 0o40755, 0);
      const f = FILES[s];
      return f ? testAttr(f.ino, 0o100644, f.bytes.length) : Promise.reject(Object.assign(new Error('no such file'), { errno: -2 }));
    },
  } as unknown as MountFs;
  const nodes = new NodeTable();
  const box: { session?: FuseSession } = {};
  const served = kernelHandlers(
    mfs,
    nodes,
    new OpTracker(1, undefined, createLogger({ service: 'test', level: 'silent' })),
    { kernelSeconds: 60, cacheTtl: Infinity },
    {
      cacheXattrs: () => undefined,
      setFileData: (ino, fd) => box.session?.setFileData(ino, fd),
      setFileRuns: (ino, fds, runs, size) => {
        if (!box.session) return false;
        box.session.setFileRuns(ino, fds, runs, size);
        registrations++;
        return true;
      },
    },
    undefined,
    view.reader({ id: 1 }),
    { kernelOpens: true },
  );
  const handlers = {
    ...served,
    read: (...args: Parameters<typeof served.read>) => {
      const k = nodes.keyOf(args[0]);
      jsReads.set(k, (jsReads.get(k) ?? 0) + 1);
      return served.read(...args);
    },
  };
  const session = (box.session = await FuseSession.mount(mnt, handlers, { rootAttr: { mode: 0o40755, nlink: 2 }, kernelOpens: true, keepCache: true }));
  try {
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const sum = async (name: string): Promise<string> =>
      (await run('sh', ['-c', `dd if=${path.join(mnt, name)} bs=128k iflag=direct status=none | sha256sum`], { timeout: 60_000, encoding: 'utf8' })).stdout.split(' ')[0];
    assert.equal(await sum('disk/image'), sha(FILES['/disk/image'].bytes));
    assert.equal(registrations, 1);
    // At its first READ (one or two in JavaScript), or before it: a large file is handed over as its lookup names it.
    const first = jsReads.get('/disk/image') ?? 0;
    assert.ok(first <= 2, `${first} READs of the image file reached JavaScript`);
    // Direct reads again: every one a READ, all the session's.
    const preads = session.stats().preadReads;
    assert.equal(await sum('disk/image'), sha(FILES['/disk/image'].bytes));
    assert.equal(jsReads.get('/disk/image') ?? 0, first);
    assert.ok(session.stats().preadReads >= preads + Math.floor(FILES['/disk/image'].bytes.length / (128 << 10)), JSON.stringify(session.stats()));
    // Random reads across run and window boundaries, exact.
    const ranges: Array<[number, number]> = [];
    const size = FILES['/disk/image'].bytes.length;
    for (let i = 0; i < 30; i++) ranges.push([Math.floor(Math.random() * size), 1 + Math.floor(Math.random() * 400_000)]);
    const script = `const fs=require('fs');const fd=fs.openSync(process.argv[1],'r');for(const [o,l] of JSON.parse(process.argv[2])){const b=Buffer.alloc(l);const n=fs.readSync(fd,b,0,l,o);process.stdout.write(b.subarray(0,n).toString('base64')+'\\n');}`;
    const out = (await run(process.execPath, ['-e', script, path.join(mnt, 'disk/image'), JSON.stringify(ranges)], { timeout: 60_000, encoding: 'utf8', maxBuffer: 64 << 20 })).stdout.split('\n');
    ranges.forEach(([o, l], i) => assert.ok(Buffer.from(out[i], 'base64').equals(FILES['/disk/image'].bytes.subarray(o, Math.min(size, o + l))), `read ${o}+${l}`));
    assert.equal(jsReads.get('/disk/image') ?? 0, first);
    // An unmapped run, or a store file not the one mapped: read in JavaScript, exact.
    for (const name of ['disk/compressed', 'disk/swapped']) {
      assert.equal(await sum(name), sha(FILES[`/${name}`].bytes));
      // Every direct READ of it (128 KiB each) in JavaScript.
      const reads = Math.ceil(FILES[`/${name}`].bytes.length / (128 << 10));
      assert.ok((jsReads.get(`/${name}`) ?? 0) >= reads, `${name}: ${jsReads.get(`/${name}`)} READs in JavaScript`);
    }
    assert.equal(registrations, 1);
    assert.equal(view.counters.refusals, 1, 'the swapped store file failed its check');
  } finally {
    await session.unmount();
    await view.close();
  }
});
