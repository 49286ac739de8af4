import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExtentMap, FileExtent, StoreFileIdentity, StoreIdentity } from '@strata/client';
import type { LayerRef } from '@strata/layers';
import { HELD_IDLE_MS, HeldRunFiles } from './runs-file';
import type { StoreFd } from './store-fd';
import { StoreView, type StoreViewClient } from './store-view';

/**
 * LayerReader.runsFile: which files are handed over as runs (DATA and HOLE
 * runs over a few store files, across map windows, adjacent runs merged)
 * and which are not (an unmapped run, too many store files, a size that
 * changes between windows, a store file failing its check); RunsFile.read
 * gives the file's bytes.
 */

let store: string;
let storeId: string;
const blobs = Array.from({ length: 10 }, () => randomBytes(300_000));

function identityOf(rel: string): StoreFileIdentity {
  const st = fs.lstatSync(path.join(store, rel), { bigint: true });
  return { path: rel, dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeSec: Number(st.mtimeNs / 1_000_000_000n), mtimeNsec: Number(st.mtimeNs % 1_000_000_000n) };
}

const ATTR = { ino: 1, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 0, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };

/** 10 runs of 10,000 bytes: run i from store file files[i] at 1000*i, or a hole (-1), or unmapped (-2). */
const LAYOUTS: Record<string, number[]> = {
  '/two': [0, 1, -1, 0, 0, 1, -1, -1, 1, 0],
  '/unmapped': [0, 1, -2, 0, 0, 1, -1, -1, 1, 0],
  '/many': [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  '/holes': [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1],
  '/resized': [0, 1, -1, 0, 0, 1, -1, -1, 1, 0],
  '/swapped': [0, 1, -1, 0, 0, 1, -1, -1, 1, 0],
};
const RUN = 10_000;
const WINDOW = 35_000; // windows cut runs

function expected(name: string): Buffer {
  return Buffer.concat(LAYOUTS[name].map((f, i) => (f < 0 ? Buffer.alloc(RUN) : blobs[f].subarray(1000 * i, 1000 * i + RUN))));
}

const client: StoreViewClient = {
  async storeIdentity(): Promise<StoreIdentity> {
    return { storeId, marker: identityOf('.strata/store-id') };
  },
  async extentMap(_ref: LayerRef, p: Buffer, offset: number): Promise<ExtentMap> {
    const name = p.toString();
    const layout = LAYOUTS[name];
    const size = layout.length * RUN;
    const end = Math.min(size, offset + WINDOW);
    const files = blobs.map((_, i) => identityOf(`s/${i}`));
    if (name === '/swapped') files[1] = { ...files[1], mtimeNsec: (files[1].mtimeNsec + 1) % 1_000_000_000 };
    const extents: FileExtent[] = [];
    layout.forEach((f, i) => {
      const from = Math.max(offset, i * RUN);
      const to = Math.min(end, (i + 1) * RUN);
      if (from >= to) return;
      if (f === -1) extents.push({ kind: 'hole', offset: from, length: to - from });
      else if (f === -2) extents.push({ kind: 'unmapped', offset: from, length: to - from, reason: 'compressed' });
      else extents.push({ kind: 'data', offset: from, length: to - from, file: f, fileOffset: 1000 * i + (from - i * RUN) });
    });
    // The resized file says another size in its later windows.
    const said = name === '/resized' && offset > 0 ? size + 1 : size;
    return { storeId, attr: { ...ATTR, size: said }, files, extents, offset, length: end - offset, eof: end >= size };
  },
};

before(() => {
  store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-runs-file-'));
  storeId = randomUUID();
  fs.mkdirSync(path.join(store, '.strata'));
  fs.writeFileSync(path.join(store, '.strata/store-id'), storeId);
  fs.mkdirSync(path.join(store, 's'));
  blobs.forEach((b, i) => fs.writeFileSync(path.join(store, `s/${i}`), b));
});

after(() => fs.rmSync(store, { recursive: true, force: true }));

test('runs over two store files and holes, across windows: merged runs, exact reads; others refused', async () => {
  const view = await StoreView.open(store, client);
  try {
    const r = view.reader({ id: 1 });
    const two = await r.runsFile(Buffer.from('/two'));
    assert.ok(two, 'handed over as runs');
    try {
      assert.equal(two.fds.length, 2);
      assert.equal(two.size, 100_000);
      // Runs 3 and 4 (file 0 at 3000 and 4000) do not continue each other; the two holes at 6-7 merge, and windows' cuts are mended.
      assert.deepEqual(
        two.runs.map((x) => [x.offset, x.length, x.file ?? -1, x.fileOffset ?? 0]),
        [[0, 10_000, 0, 0], [10_000, 10_000, 1, 1000], [20_000, 10_000, -1, 0], [30_000, 10_000, 0, 3000], [40_000, 10_000, 0, 4000], [50_000, 10_000, 1, 5000], [60_000, 20_000, -1, 0], [80_000, 10_000, 1, 8000], [90_000, 10_000, 0, 9000]],
      );
      const want = expected('/two');
      for (const [off, len] of [[0, 100_000], [9_999, 2], [25_000, 40_000], [99_990, 100], [100_000, 10]]) {
        const b = Buffer.alloc(len);
        const { bytesRead } = await two.read(b, 0, len, off);
        assert.ok(b.subarray(0, bytesRead).equals(want.subarray(off, Math.min(100_000, off + len))), `read ${off}+${len}`);
      }
    } finally {
      await two.close();
    }
    const holes = await r.runsFile(Buffer.from('/holes'));
    assert.deepEqual(holes?.runs, [{ offset: 0, length: 100_000 }]);
    await holes?.close();
    for (const name of ['/unmapped', '/many', '/resized', '/swapped']) assert.equal(await r.runsFile(Buffer.from(name)), undefined, name);
    assert.equal(view.counters.refusals, 1, 'the swapped store file failed its check');
  } finally {
    await view.close();
  }
});

test('runs hand-overs share the store files they name: opened and checked once, closed once idle', async () => {
  const view = await StoreView.open(store, client);
  try {
    const r = view.reader({ id: 2 });
    const first = await r.runsFile(Buffer.from('/two'));
    assert.ok(first);
    const opens = view.opens;
    const more = await Promise.all([r.runsFile(Buffer.from('/two')), r.runsFile(Buffer.from('/holes')), r.runsFile(Buffer.from('/two'))]);
    assert.equal(view.opens, opens, 'no store file opened again');
    assert.deepEqual(more[0]?.fds, first.fds);
    // A map naming a store file otherwise (rewritten since) is checked afresh, and refused; the held ones stay good.
    assert.equal(await r.runsFile(Buffer.from('/swapped')), undefined);
    const fd = first.fds[0];
    const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    assert.equal(target, fs.realpathSync(path.join(store, 's/0')));
    await first.close();
    for (const m of more) await m?.close();
    // Let go once no RunsFile has used it for HELD_IDLE_MS.
    await new Promise((res) => setTimeout(res, HELD_IDLE_MS * 2.5));
    let still: string | undefined;
    try {
      still = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      still = undefined;
    }
    assert.notEqual(still, target, 'closed');
    const again = await r.runsFile(Buffer.from('/two'));
    assert.ok(again);
    assert.ok(view.opens > opens, 'opened and checked anew');
    await again.close();
  } finally {
    await view.close();
  }
});

test('HeldRunFiles: one open per identity, a failed open not held, at most MAX_HELD held (past it, each use its own)', async () => {
  const opened: string[] = [];
  const closed: number[] = [];
  let nextFd = 1000;
  const held = new HeldRunFiles(async (id) => {
    opened.push(id.path);
    if (id.path === 'bad') throw new Error('refused');
    const fd = nextFd++;
    return { fd, read: async () => ({ bytesRead: 0 }), close: async () => void closed.push(fd) } as unknown as StoreFd;
  });
  const id = (p: string, ino = 1): StoreFileIdentity => ({ path: p, dev: 1, ino, size: 10, mtimeSec: 1, mtimeNsec: 0 });
  const a = await Promise.all([held.use(id('a')), held.use(id('a'))]);
  assert.equal(a[0].fd, a[1].fd);
  const other = await held.use(id('a', 2));
  assert.notEqual(other.fd, a[0].fd, 'another inode at the same path is another file');
  await assert.rejects(held.use(id('bad')));
  await assert.rejects(held.use(id('bad')));
  assert.deepEqual(opened, ['a', 'a', 'bad', 'bad']);
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => held.use(id(`m${i}`))));
  assert.equal(held.size, 16);
  // Those past the bound are their own: released, closed.
  for (const m of many) await m.close();
  assert.equal(closed.length, 20 - (16 - 2));
  for (const x of [...a, other]) await x.close();
  await held.closeIdle();
  assert.equal(held.size, 0);
  assert.equal(closed.length, 22);
});
