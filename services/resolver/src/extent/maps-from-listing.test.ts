import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog, type LayerRef } from '@strata/layers';
import { isRegMode } from '@strata/posix';
import { printable } from '@strata/traversal';
import { Chains } from '../chains';
import { ExtentMaps, MAX_SIBLING_SIZE } from './extent-maps';

/**
 * A sealed `dir:` file's map built from its directory's listing (the fast
 * way) against the same map built by realpath + lstat of the file (the
 * way it was built before): equal on a chain with nested directories,
 * whiteouts (OCI files and, as root, 0/0 character devices), opaque
 * directories (marker file and xattr), symlinked names on the way, a
 * layer named through a symlink, a name that is not UTF-8, sizes on both
 * sides of the sibling bound — and what changes under a sealed layer
 * anyway never gives a map naming a path outside the store.
 */

const root = process.getuid?.() === 0;

interface Stack {
  store: string;
  chains: Chains;
  fast: ExtentMaps;
  slow: ExtentMaps;
}

function write(file: string, data: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
}

/** Three dir: layers in a store (the top one reached through a symlink), with every overlay rule the merge knows. */
async function withStack(fn: (s: Stack) => Promise<void>): Promise<void> {
  const store = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-maps-listing-')));
  try {
    const low = path.join(store, 'layers/low');
    const mid = path.join(store, 'layers/mid');
    const top = path.join(store, 'layers/top');
    for (let d = 0; d < 4; d++) for (let f = 0; f < 6; f++) write(path.join(low, `d${d}`, `f${f}`), `low ${d}/${f} `.repeat(f + 1));
    write(path.join(low, 'd0/sub/deeper/x'), 'x in low');
    write(path.join(low, 'd0/sub/y'), 'y in low');
    // Too large to be a sibling (sparse: only its size matters).
    write(path.join(low, 'big'), '');
    fs.truncateSync(path.join(low, 'big'), MAX_SIBLING_SIZE + 1);
    write(path.join(low, 'empty'), '');
    write(path.join(low, 'r1'), 'root file');
    write(path.join(low, Buffer.from([0x62, 0xff, 0x61]).toString('latin1')), 'placeholder');
    // A name that is not UTF-8: the store path cannot be named by a string either way.
    fs.renameSync(path.join(low, Buffer.from([0x62, 0xff, 0x61]).toString('latin1')), Buffer.concat([Buffer.from(`${low}/`), Buffer.from([0x62, 0xff, 0x61])]));
    // mid: a file replaced, one whited out the OCI way, a directory made opaque by its marker, a file only here.
    write(path.join(mid, 'd0/f1'), 'f1 from mid');
    write(path.join(mid, 'd0/.wh.f2'), '');
    write(path.join(mid, 'd1/.wh..wh..opq'), '');
    write(path.join(mid, 'd1/only-mid'), 'only in mid');
    write(path.join(mid, 'd0/sub/z'), 'z in mid');
    // top: a directory opaque by xattr, a kernel whiteout (as root), symlinked names, new files.
    write(path.join(top, 'd2/n'), 'new in top');
    const xattr = spawnSync('setfattr', ['-n', 'user.overlay.opaque', '-v', 'y', path.join(top, 'd2')]);
    if (xattr.status !== 0) fs.writeFileSync(path.join(top, 'd2/.wh..wh..opq'), '');
    write(path.join(top, 'd0/f0'), 'f0 from top');
    fs.mkdirSync(path.join(top, 'd3'));
    if (!root || spawnSync('mknod', [path.join(top, 'd3/f3'), 'c', '0', '0']).status !== 0) fs.writeFileSync(path.join(top, 'd3/.wh.f3'), '');
    fs.symlinkSync('d0', path.join(top, 'lnk'));
    fs.symlinkSync('f4', path.join(top, 'd0/f4-link'));
    fs.symlinkSync('../d1', path.join(top, 'd0/up'));
    fs.symlinkSync('layers/top', path.join(store, 'alias'));
    const catalog = new Catalog(store);
    await catalog.init();
    await catalog.create({ source: 'dir:layers/low', layerType: 'base', name: 'low' });
    await catalog.create({ source: 'dir:layers/mid', layerType: 'snapshot', name: 'mid', base: { name: 'low' } });
    await catalog.create({ source: 'dir:alias', layerType: 'snapshot', name: 'top', base: { name: 'mid' } });
    const chains = new Chains(catalog);
    try {
      await fn({ store, chains, fast: new ExtentMaps((ref) => chains.view(ref), store), slow: new ExtentMaps((ref) => chains.view(ref), store, false) });
    } finally {
      chains.close();
    }
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
}

/** Every regular file of the merged tree, by its path, and a few more reached through symlinked names. */
async function regularFiles(chains: Chains, ref: LayerRef): Promise<Buffer[]> {
  const view = await chains.view(ref);
  const out: Buffer[] = [];
  for await (const batch of view.projection.walk('/')) for (const e of batch) if (isRegMode(e.attr.mode)) out.push(e.path);
  return out;
}

/** An answer or its error, comparable. */
function settle<T>(p: Promise<T>): Promise<T | { errno: number; message: string }> {
  return p.catch((e: unknown) => ({ errno: (e as { errno: number }).errno, message: (e as Error).message }));
}

test('a map from the listing equals the map from realpath + lstat, for every file, window and sibling batch', async () => {
  await withStack(async ({ chains, fast, slow }) => {
    const ref = { name: 'top' };
    const files = await regularFiles(chains, ref);
    const names = files.map((f) => f.toString('latin1'));
    // The merge's rules are in the tree (so the comparison covers them).
    assert.ok(names.includes('/d0/f0') && names.includes('/d0/f1') && !names.includes('/d0/f2'), 'replaced and whited-out files');
    assert.ok(names.includes('/d1/only-mid') && !names.includes('/d1/f0'), 'opaque by marker');
    assert.ok(names.includes('/d2/n') && !names.includes('/d2/f0'), 'opaque by xattr');
    assert.ok(!names.includes('/d3/f3') && names.includes('/d3/f4'), 'whiteout');
    const asked = [...files, Buffer.from('/lnk/f5'), Buffer.from('/d0/up/only-mid'), Buffer.from('/lnk/sub/deeper/x'), Buffer.from('/d0/f4-link'), Buffer.from('/d0/f2'), Buffer.from('/d0/sub')];
    let dataRuns = 0;
    for (const p of asked) {
      for (const [offset, length, siblings] of [
        [0, 0, 128],
        [0, 0, 0],
        [3, 5, 2],
      ]) {
        const a = await settle(fast.mapWithSiblings(ref, p, offset, length, siblings));
        const b = await settle(slow.mapWithSiblings(ref, p, offset, length, siblings));
        assert.deepEqual(a, b, `${printable(p)} ${offset}+${length} siblings ${siblings}`);
        if ('map' in a) dataRuns += a.map.runs.filter((r) => r.kind === 'data').length;
      }
    }
    assert.ok(dataRuns > files.length, `maps name store files (${dataRuns} data runs)`);
    const one = await fast.mapWithSiblings(ref, Buffer.from('/d0/f0'), 0, 0, 128);
    assert.deepEqual(one.map.files.map((f) => f.path), ['layers/top/d0/f0'], 'a layer reached through a symlink is named by its real path');
    assert.ok(one.siblings.some((s) => s.map.files[0]?.path === 'layers/mid/d0/f1'), 'siblings from the layer that supplies each');
  });
});

test('a directory swapped for a symlink out of the store after the listing: no map names a path through it', async () => {
  await withStack(async ({ store, chains, fast }) => {
    const ref = { name: 'top' };
    const view = await chains.view(ref);
    await view.projection.readdirNodes('/d3');
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-maps-outside-'));
    try {
      for (let f = 0; f < 6; f++) write(path.join(outside, `f${f}`), `low 3/${f} `.repeat(f + 1));
      fs.renameSync(path.join(store, 'layers/low/d3'), path.join(store, 'layers/low/d3.moved'));
      fs.symlinkSync(outside, path.join(store, 'layers/low/d3'));
      const m = await fast.mapWithSiblings(ref, Buffer.from('/d3/f4'), 0, 0, 128);
      for (const a of [m.map, ...m.siblings.map((s) => s.map)]) {
        for (const f of a.files) assert.ok(!f.path.startsWith('layers/low/d3/'), `${f.path} is named through the symlink`);
        assert.ok(a.runs.every((r) => r.kind !== 'data'), 'nothing of the swapped directory is mapped');
      }
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
});

test('a file replaced by a symlink is refused: not mapped when asked for, not among its siblings', async () => {
  await withStack(async ({ store, chains, fast }) => {
    const ref = { name: 'top' };
    // Mapped once first: whatever the maps keep from it must not outlive the file.
    const before = await fast.mapWithSiblings(ref, Buffer.from('/d1/only-mid'), 0, 0, 128);
    assert.deepEqual(before.map.files.map((f) => f.path), ['layers/mid/d1/only-mid']);
    const file = path.join(store, 'layers/mid/d1/only-mid');
    fs.rmSync(file);
    fs.symlinkSync('/etc/passwd', file);
    for (const siblings of [0, 128]) {
      const again = await settle(fast.mapWithSiblings(ref, Buffer.from('/d1/only-mid'), 0, 0, siblings));
      assert.ok('errno' in again && /not a regular file/.test(again.message), JSON.stringify(again));
    }
    fs.writeFileSync(path.join(store, 'layers/mid/d1/other'), 'another file');
    const sib = await fast.mapWithSiblings(ref, Buffer.from('/d1/other'), 0, 0, 128);
    assert.deepEqual(sib.siblings.map((s) => printable(s.path)), []);
    await chains.view(ref);
  });
});
