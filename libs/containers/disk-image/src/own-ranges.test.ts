import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import * as path from 'node:path';
import { openImage, type GuestRange } from './index';
import { qemuImg, qemuIo, tempDir } from './fixtures';

let store: string;
let cleanup: () => void;

before(() => {
  ({ dir: store, cleanup } = tempDir('own-ranges'));
  store = realpathSync(store);
});
after(() => cleanup());

/** What qemu says the top file answers itself: `qemu-img map` extents of depth 0 that are present. */
function qemuOwnRanges(file: string): GuestRange[] {
  const map = JSON.parse(qemuImg('map', '--output=json', file)) as { start: number; length: number; depth: number; present: boolean }[];
  const out: GuestRange[] = [];
  for (const e of map) {
    if (e.depth !== 0 || !e.present) continue;
    const last = out[out.length - 1];
    if (last && last.offset + last.length === e.start) last.length += e.length;
    else out.push({ offset: e.start, length: e.length });
  }
  return out;
}

for (const extendedL2 of [false, true]) {
  test(`a snapshot's own ranges are what qemu-img map says its file holds${extendedL2 ? ' (extended L2 subclusters)' : ''}`, async () => {
    const tag = extendedL2 ? 'x' : 's';
    const base = path.join(store, `base-${tag}.qcow2`);
    const snap = path.join(store, `snap-${tag}.qcow2`);
    qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
    qemuIo(base, 'write -P 1 0 8M', 'write -P 2 40M 1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', path.basename(base), '-F', 'qcow2', ...(extendedL2 ? ['-o', 'extended_l2=on'] : []), snap);
    // Unaligned data, zeroed clusters, a run past the base's data, the last cluster.
    qemuIo(snap, 'write -P 3 70000 5000', 'write -z 4M 128k', 'write -P 4 20M 3M', 'write -P 5 67104768 4k');
    const img = await openImage(path.basename(snap), { storeRoot: store });
    try {
      assert.deepEqual(await img.ownRanges(), qemuOwnRanges(snap));
    } finally {
      await img.close();
    }
    const baseImg = await openImage(path.basename(base), { storeRoot: store });
    try {
      assert.deepEqual(await baseImg.ownRanges(), qemuOwnRanges(base), 'an image without backing file answers its allocated clusters');
    } finally {
      await baseImg.close();
    }
  });
}

test('a raw image has no own ranges to tell: every byte is its own', async () => {
  const raw = path.join(store, 'disk.raw');
  qemuImg('create', '-q', '-f', 'raw', raw, '1M');
  const img = await openImage('disk.raw', { storeRoot: store });
  try {
    assert.equal(await img.ownRanges(), undefined);
  } finally {
    await img.close();
  }
});
