import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DirEntry } from '@strata/protocol';
import { createLogger } from '@strata/telemetry';
import type { MountFs } from '../mount/mount-fs';
import { OpTracker } from '../observability/op-tracker';
import { kernelHandlers, LARGE_AHEAD_MAX_BYTES, LARGE_FILE, type WholeFile, type WholeFiles } from './kernel-handlers';
import { NodeTable } from './node-table';

/**
 * Where the kernel opens files, a large regular file is handed over as soon
 * as a listing or a lookup names it (its first READ then never waits for
 * its map); small files, directories and mounts whose files the agent opens
 * are left as they were, and the hand-overs ahead are bounded.
 */

const ATTR = { ino: 1, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 0, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };
const caller = { uid: 0, gid: 0, pid: 1 };
let dir: string;
let file: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-large-ahead-'));
  file = path.join(dir, 'store-file');
  fs.writeFileSync(file, Buffer.alloc(8192, 7));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Store files (one real file for every path), counting the hand-overs asked and how many ran at once. */
function fakeWhole(): WholeFiles & { asked: string[]; most: number; open: number } {
  const w = {
    asked: [] as string[],
    most: 0,
    open: 0,
    async wholeFd(p: Buffer): Promise<WholeFile | undefined> {
      w.asked.push(p.toString());
      w.most = Math.max(w.most, ++w.open);
      try {
        // A map's round trip.
        await new Promise((r) => setTimeout(r, 2));
        const fd = fs.openSync(file, 'r');
        return {
          fd,
          read: async (b: Buffer, o: number, l: number, pos: number) => ({ bytesRead: fs.readSync(fd, b, o, l, pos) }),
          close: async () => fs.closeSync(fd),
        };
      } finally {
        w.open--;
      }
    },
  };
  return w;
}

function setup(kernelOpens: boolean, sizes: Record<string, number>) {
  const nodes = new NodeTable();
  const whole = fakeWhole();
  const handed: string[] = [];
  const attrOf = (name: string) => (name.startsWith('dir') ? { ...ATTR, mode: 0o40755 } : { ...ATTR, size: sizes[name] ?? 0 });
  const mfs = {
    tapChunks: () => undefined,
    stat: async (p: Buffer) => attrOf(path.basename(p.toString())),
    readdir: async () => ({ dir: { ...ATTR, mode: 0o40755 }, entries: Object.keys(sizes).map((n) => ({ name: Buffer.from(n), attr: attrOf(n) })) }),
    readSized: async (_p: Buffer, _pos: number, len: number) => ({ data: Buffer.alloc(len), size: len }),
  } as unknown as MountFs;
  const native = {
    cacheXattrs: () => undefined,
    setFileData: (ino: bigint): 'pread' => {
      handed.push(nodes.keyOf(ino));
      return 'pread';
    },
  };
  const logger = createLogger({ service: 'test', level: 'silent' });
  const h = kernelHandlers(mfs, nodes, new OpTracker(1, undefined, logger), { kernelSeconds: 1, cacheTtl: Infinity }, native, undefined, whole, { kernelOpens });
  return { h, nodes, whole, handed, entries: (names: string[]): DirEntry[] => names.map((n) => ({ name: Buffer.from(n), attr: attrOf(n) })) };
}

async function settle(done: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
}

describe('large files handed over ahead of their first READ', () => {
  it("hands over a listing's large regular files, not its small files, directories or files past the ahead bound", async () => {
    const sizes = { 'big.img': 1 << 30, small: 4096, 'just-under': LARGE_FILE - 1, 'at-least': LARGE_FILE, huge: LARGE_AHEAD_MAX_BYTES + 1, dirA: 0, empty: 0 };
    const s = setup(true, sizes);
    s.h.listed('/', s.entries(Object.keys(sizes)));
    await settle(() => s.handed.length >= 2 && s.whole.open === 0);
    assert.deepEqual([...s.handed].sort(), ['/at-least', '/big.img']);
    assert.deepEqual([...s.whole.asked].sort(), ['/at-least', '/big.img']);
    // Its first READ finds it handed over: no map is asked again.
    await s.h.read(s.nodes.inoOf('/big.img'), 0n, 4096n, 4096, caller);
    assert.equal(s.whole.asked.filter((p) => p === '/big.img').length, 1);
    // Named again (the prefetch, then a READDIR): not asked again.
    s.h.listed('/', s.entries(['big.img']));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.whole.asked.length, 2);
  });

  it('hands over a large file at its lookup', async () => {
    const s = setup(true, { 'big.img': 2 * LARGE_FILE, small: 10 });
    await s.h.lookup(1n, Buffer.from('small'), caller);
    const e = (await s.h.lookup(1n, Buffer.from('big.img'), caller)) as { ino: bigint };
    assert.equal(e.ino, s.nodes.inoOf('/big.img'));
    await settle(() => s.handed.length >= 1 && s.whole.open === 0);
    assert.deepEqual(s.handed, ['/big.img']);
  });

  it('READDIR answered here names large files to hand over', async () => {
    const s = setup(true, { 'a.img': 5 * LARGE_FILE, b: 1 });
    await s.h.readdir(1n, caller);
    await settle(() => s.handed.length >= 1 && s.whole.open === 0);
    assert.deepEqual(s.handed, ['/a.img']);
  });

  it("waits for the mount's prefetch walk: named meanwhile, handed over once it settles; a READ meanwhile hands its file over at once", async () => {
    const s = setup(true, { 'big.img': 1 << 30, 'other.img': 1 << 30 });
    let walkDone!: () => void;
    s.h.holdLargeUntil(new Promise<void>((resolve) => (walkDone = resolve)));
    s.h.listed('/', s.entries(['big.img', 'other.img']));
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(s.handed, [], 'nothing mapped beside the walk');
    await s.h.read(s.nodes.inoOf('/other.img'), 0n, 0n, 4096, caller);
    assert.deepEqual(s.handed, ['/other.img'], 'a READ does not wait for the walk');
    walkDone();
    await settle(() => s.handed.length >= 2 && s.whole.open === 0);
    assert.deepEqual([...s.handed].sort(), ['/big.img', '/other.img']);
    assert.equal(s.whole.asked.filter((p) => p === '/other.img').length, 1, 'not asked again once the walk settled');
  });

  it("a lookup hands its large file over at once while the walk holds the listed ones", async () => {
    const s = setup(true, { 'big.img': 1 << 30, 'listed.img': 1 << 30 });
    let walkDone!: () => void;
    s.h.holdLargeUntil(new Promise<void>((resolve) => (walkDone = resolve)));
    s.h.listed('/', s.entries(['listed.img']));
    await s.h.lookup(1n, Buffer.from('big.img'), caller);
    await settle(() => s.handed.length >= 1 && s.whole.open === 0);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(s.handed, ['/big.img'], 'the looked-up file only');
    walkDone();
    await settle(() => s.handed.length >= 2 && s.whole.open === 0);
    assert.deepEqual([...s.handed].sort(), ['/big.img', '/listed.img']);
  });

  it('nothing ahead where the agent opens files (an OPEN hands over before any READ)', async () => {
    const s = setup(false, { 'big.img': 1 << 30 });
    s.h.listed('/', s.entries(['big.img']));
    await s.h.lookup(1n, Buffer.from('big.img'), caller);
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(s.handed, []);
    assert.deepEqual(s.whole.asked, []);
  });

  it('is bounded: two at a time, a queue of 64, 256 per mount', async () => {
    const names = Array.from({ length: 400 }, (_, i) => `f${String(i).padStart(3, '0')}`);
    const sizes = Object.fromEntries(names.map((n) => [n, LARGE_FILE]));
    const s = setup(true, sizes);
    s.h.listed('/', s.entries(names));
    await settle(() => s.handed.length >= 64 && s.whole.open === 0);
    assert.equal(s.handed.length, 64, 'the queue takes 64 of one listing');
    assert.ok(s.whole.most <= 2, `${s.whole.most} at once`);
    for (let i = 0; i < 10; i++) {
      s.h.listed('/', s.entries(names));
      await settle(() => s.whole.open === 0 && s.handed.length >= Math.min(256, 64 * (i + 2)));
    }
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.handed.length, 256);
    assert.equal(new Set(s.handed).size, 256, 'none twice');
  });
});
