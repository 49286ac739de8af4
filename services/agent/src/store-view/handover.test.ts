import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExtentMap, StoreFileIdentity, StoreIdentity } from '@strata/client';
import type { LayerRef } from '@strata/layers';
import { createLogger } from '@strata/telemetry';
import { kernelHandlers } from '../kernel/kernel-handlers';
import { NodeTable } from '../kernel/node-table';
import type { MountFs } from '../mount/mount-fs';
import { OpTracker } from '../observability/op-tracker';
import { StoreView, type StoreViewClient } from './store-view';

/**
 * The read handler with a store view: a `dir:` file (one run of one store
 * file) is handed to the session whole after its first READ, which is
 * answered from the handed-over file; a file that is not one run, or whose
 * store file fails its check, stays on the JavaScript path.
 */

let store: string;
let storeId: string;
const content = randomBytes(200_000);

function identityOf(rel: string): StoreFileIdentity {
  const st = fs.lstatSync(path.join(store, rel), { bigint: true });
  return { path: rel, dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeSec: Number(st.mtimeNs / 1_000_000_000n), mtimeNsec: Number(st.mtimeNs % 1_000_000_000n) };
}

const ATTR = { ino: 1, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 0, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };

/** Maps /whole as itself, /split as two runs of it, /swapped as itself with another inode number. */
const client: StoreViewClient = {
  async storeIdentity(): Promise<StoreIdentity> {
    return { storeId, marker: identityOf('.strata/store-id') };
  },
  async extentMap(_ref: LayerRef, p: Buffer): Promise<ExtentMap> {
    const id = identityOf('layer/file');
    const size = id.size;
    const base = { storeId, attr: { ...ATTR, size }, offset: 0, length: size, eof: true };
    if (p.toString() === '/split') {
      return {
        ...base,
        files: [id],
        extents: [
          { kind: 'data', offset: 0, length: 1000, file: 0, fileOffset: 0 },
          { kind: 'hole', offset: 1000, length: size - 1000 },
        ],
      };
    }
    const files = p.toString() === '/swapped' ? [{ ...id, ino: id.ino + 1 }] : [id];
    return { ...base, files, extents: [{ kind: 'data', offset: 0, length: size, file: 0, fileOffset: 0 }] };
  },
};

before(() => {
  store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-handover-'));
  storeId = randomUUID();
  fs.mkdirSync(path.join(store, '.strata'));
  fs.writeFileSync(path.join(store, '.strata/store-id'), storeId);
  fs.mkdirSync(path.join(store, 'layer'));
  fs.writeFileSync(path.join(store, 'layer/file'), content);
});

after(() => fs.rmSync(store, { recursive: true, force: true }));

test('a dir: file is handed to the session whole; others stay on the JavaScript path', async () => {
  const view = await StoreView.open(store, client);
  try {
    const nodes = new NodeTable();
    const viaJs: string[] = [];
    const mfs = {
      tapChunks: () => undefined,
      readView: async (p: Buffer, pos: number, len: number) => {
        viaJs.push(p.toString());
        return content.subarray(pos, pos + len);
      },
      readSized: async (p: Buffer, pos: number, len: number) => {
        viaJs.push(p.toString());
        return { data: content.subarray(pos, pos + len), size: content.length };
      },
      stat: async () => ({ ...ATTR, size: content.length }),
    } as unknown as MountFs;
    const handed = new Map<bigint, { mode: string; bytes: Buffer }>();
    const native = {
      cacheXattrs: () => undefined,
      setFileData: (ino: bigint, fd: number): 'pread' => {
        // What the session would serve from: its own copy of the descriptor, read here at once.
        const bytes = Buffer.alloc(content.length);
        fs.readSync(fd, bytes, 0, bytes.length, 0);
        handed.set(ino, { mode: 'pread', bytes });
        return 'pread';
      },
    };
    const logger = createLogger({ service: 'test', level: 'silent' });
    const h = kernelHandlers(mfs, nodes, new OpTracker(1, undefined, logger), { kernelSeconds: 1, cacheTtl: Infinity }, native, undefined, view.reader({ id: 1 }));
    const [whole, split, swapped] = ['/whole', '/split', '/swapped'].map((p) => nodes.inoOf(p));
    const caller = { uid: 0, gid: 0, pid: 1 };
    const read = async (ino: bigint, offset: bigint, size: number): Promise<Buffer> => {
      const r = await h.read(ino, 0n, offset, size, caller);
      assert.ok(Buffer.isBuffer(r), `read answered ${String(r)}`);
      return r;
    };
    const first = await Promise.all([read(whole, 5000n, 4096), read(whole, 0n, 4096)]);
    assert.ok(first[0].equals(content.subarray(5000, 9096)));
    assert.ok(first[1].equals(content.subarray(0, 4096)));
    assert.ok(handed.get(whole)?.bytes.equals(content), 'the session was given the store file itself');
    assert.equal(handed.size, 1);
    for (const ino of [split, swapped]) {
      const got = await read(ino, 100n, 50);
      assert.ok(got.equals(content.subarray(100, 150)));
      assert.equal(handed.has(ino), false);
    }
    // The second of the two first READs of /whole may have come here while the first handed it over; nothing after.
    assert.ok(viaJs.filter((p) => p === '/whole').length <= 1, viaJs.join(' '));
    assert.ok(viaJs.includes('/split') && viaJs.includes('/swapped'), viaJs.join(' '));
    assert.equal(view.counters.refusals, 1, 'the swapped file failed its check');
  } finally {
    await view.close();
  }
});

test("a file's first OPEN hands it over before the open is answered, and the directory's next files behind it", async () => {
  const view = await StoreView.open(store, client);
  try {
    const nodes = new NodeTable();
    const names = ['a', 'b', 'c', 'd', 'empty', 'split', 'sub'];
    const attrOf = (n: string) => ({ ...ATTR, size: n === 'empty' ? 0 : content.length, mode: n === 'sub' ? 0o40755 : 0o100644 });
    const mfs = {
      tapChunks: () => undefined,
      stat: async () => ({ ...ATTR, size: content.length }),
      readdir: async (p: Buffer) => {
        assert.equal(p.toString(), '/');
        return { dir: { ...ATTR, mode: 0o40755 }, entries: names.map((n) => ({ name: Buffer.from(n), attr: attrOf(n) })) };
      },
    } as unknown as MountFs;
    const handed = new Set<string>();
    const native = {
      cacheXattrs: () => undefined,
      setFileData: (ino: bigint): 'passthrough' => {
        handed.add(nodes.keyOf(ino));
        return 'passthrough';
      },
    };
    const logger = createLogger({ service: 'test', level: 'silent' });
    const h = kernelHandlers(mfs, nodes, new OpTracker(1, undefined, logger), { kernelSeconds: 1, cacheTtl: Infinity }, native, undefined, view.reader({ id: 1 }));
    assert.ok(h.open, 'with a store view the handlers ask about first opens');
    await h.open(nodes.inoOf('/b'), { uid: 0, gid: 0, pid: 1 });
    assert.ok(handed.has('/b'), 'handed over before the OPEN is answered');
    for (let i = 0; i < 200 && !handed.has('/d'); i++) await new Promise((r) => setTimeout(r, 5));
    // After /b in the listing: /c and /d (whole store files); not the empty file, the split one, the directory, nor /a before it.
    assert.deepEqual([...handed].sort(), ['/b', '/c', '/d']);
    await h.open(nodes.inoOf('/split'), { uid: 0, gid: 0, pid: 1 });
    assert.equal(handed.has('/split'), false, 'a file that is not one store file opens as before');
  } finally {
    await view.close();
  }
});

test('without a store view no OPEN waits for JavaScript', () => {
  const logger = createLogger({ service: 'test', level: 'silent' });
  const h = kernelHandlers({ tapChunks: () => undefined } as unknown as MountFs, new NodeTable(), new OpTracker(1, undefined, logger), { kernelSeconds: 1, cacheTtl: Infinity }, { cacheXattrs: () => undefined, setFileData: () => 'pread' as const });
  assert.equal(h.open, undefined);
});
