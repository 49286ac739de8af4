import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient, type ExtentMap } from '@strata/client';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { startResolver, strata, type ResolverProcess } from '@strata/harness';
import { Catalog, type LayerRef } from '@strata/layers';
import { CertDir } from '../support/certs';
import { canLoopMount, partitionDisk, run, snapshotFromRaw, withLoop, withLoopMount, type PartitionWindow } from '../images/disk-fixture';

/**
 * ExtentMap through a real resolver process serving mutual TLS: for a
 * `dir:` layer and for ext4 and XFS inside a qcow2 chain, reading the store
 * files at the returned runs (zeros for holes, the resolver's Read for
 * unmapped runs) gives exactly the bytes the kernel gives (the folder's
 * file; its loop mount of the flattened disk). A caller without a grant is
 * refused as a Read would be, and so is a LIVE layer.
 */

const OPS = 'spiffe://strata.test/ops';
const images = canLoopMount('mke2fs', 'mkfs.xfs', 'qemu-img', 'sfdisk') ? false : 'needs root, loop devices, mke2fs, mkfs.xfs, qemu-img and sfdisk';

let work: string;
let store: string;
let certs: CertDir;
let resolver: ResolverProcess | undefined;
let ops: StrataClient;
let bob: StrataClient;
let flat: string;
let parts: PartitionWindow[];

function bytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let a = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = a >>> 24;
  }
  return out;
}

/** Files of many sizes, a sparse one and two fragmented ones (interleaved synced writes). */
function fill(m: string, tag: number): void {
  fs.mkdirSync(path.join(m, 'd'), { recursive: true });
  for (const [i, size] of [0, 1, 4095, 4097, 70_000, 1_048_579, 2_500_000].entries()) fs.writeFileSync(path.join(m, 'd', `f${size}`), bytes(size, tag * 100 + i));
  const sparse = fs.openSync(path.join(m, 'd/sparse'), 'w');
  for (const at of [0, 300_000, 1_900_001]) fs.writeSync(sparse, bytes(9000, at), 0, 9000, at);
  fs.ftruncateSync(sparse, 3_000_000);
  fs.closeSync(sparse);
  const a = fs.openSync(path.join(m, 'd/frag-a'), 'w');
  const b = fs.openSync(path.join(m, 'd/frag-b'), 'w');
  for (let i = 0; i < 24; i++) {
    fs.writeSync(a, bytes(12_288, i));
    fs.fsyncSync(a);
    fs.writeSync(b, bytes(8192, 1000 + i));
    fs.fsyncSync(b);
  }
  fs.closeSync(a);
  fs.closeSync(b);
}

function change(m: string): void {
  fs.appendFileSync(path.join(m, 'd/f70000'), bytes(50_000, 77));
  const fd = fs.openSync(path.join(m, 'd/f1048579'), 'r+');
  fs.writeSync(fd, bytes(200_000, 78), 0, 200_000, 300_000);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(m, 'd/new'), bytes(500_000, 79));
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-extent-rpc-'));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  fill(path.join(store, 'folder'), 9);
  fs.mkdirSync(path.join(store, 'growing'));
  fs.writeFileSync(path.join(store, 'growing/log'), bytes(5000, 3));
  const catalog = new Catalog(store);
  await catalog.init();
  await catalog.create({ source: 'dir:folder', layerType: 'base', name: 'folder' });
  await catalog.create({ source: 'dir:growing', layerType: 'base', name: 'growing', mountOptions: ['live'] });
  if (!images) {
    const raw = path.join(work, 'base.raw');
    parts = partitionDisk(raw, 400, 'label: gpt\nsize=40MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n');
    withLoop(raw, parts[0], (dev) => run('mke2fs', ['-q', '-F', '-t', 'ext4', dev]));
    withLoop(raw, parts[1], (dev) => run('mkfs.xfs', ['-q', '-f', dev]));
    await withLoopMount(raw, parts[0], 'rw', (m) => fill(m, 1));
    await withLoopMount(raw, parts[1], 'rw', (m) => fill(m, 2));
    const vm = path.join(store, 'vm');
    run('qemu-img', ['convert', '-O', 'qcow2', raw, 'base.qcow2'], vm);
    flat = path.join(work, 'after.raw');
    fs.copyFileSync(raw, flat);
    await withLoopMount(flat, parts[0], 'rw', change);
    await withLoopMount(flat, parts[1], 'rw', change);
    snapshotFromRaw(vm, 'base.qcow2', raw, flat, 'top.qcow2');
    fs.rmSync(raw);
    for (const [n, fsName] of [[1, 'ext4'], [2, 'xfs']] as const) {
      const base = await catalog.create({ source: `qcow2:vm/base.qcow2#${n}`, layerType: 'base', name: `${fsName}-base` });
      await catalog.create({ source: `qcow2:vm/top.qcow2#${n}`, layerType: 'snapshot', base: { id: base.layerId }, name: `${fsName}-top` });
    }
  }
  certs = new CertDir('strata-extent-certs-');
  certs.makeCa('ca');
  certs.makeLeaf('server', 'ca', 'resolver', 100, 'IP:127.0.0.1');
  certs.makeLeaf('ops', 'ca', 'operator', 101, `URI:${OPS}`);
  certs.makeLeaf('bob', 'ca', 'bob', 102);
  resolver = await startResolver({ store, extra: [...certs.serverArgs('server'), '--admin', OPS] });
  ops = new StrataClient({ resolver: resolver.address, tls: certs.clientTls('ops'), deadlineMs: 20_000 });
  bob = new StrataClient({ resolver: resolver.address, tls: certs.clientTls('bob'), deadlineMs: 20_000 });
});

after(async () => {
  ops?.close();
  bob?.close();
  await resolver?.stop();
  certs?.remove();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function pread(file: string, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = fs.openSync(file, 'r');
  try {
    assert.equal(fs.readSync(fd, buf, 0, length, offset), length, `pread ${length} at ${offset} of ${file}`);
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** The store files a map names are the ones the resolver stated: same inode, size and mtime here. */
function checkIdentities(m: ExtentMap): void {
  for (const f of m.files) {
    assert.ok(!f.path.startsWith('/') && !f.path.split('/').includes('..'), f.path);
    const st = fs.lstatSync(path.join(store, f.path), { bigint: true });
    assert.deepEqual([f.dev, f.ino, f.size, f.mtimeSec * 1e9 + f.mtimeNsec], [Number(st.dev), Number(st.ino), Number(st.size), Number(st.mtimeNs)], f.path);
  }
}

/** [offset, offset+length) of a layer's file, read from the store as its maps say (answer after answer). */
async function readByMaps(ref: LayerRef, p: string, offset: number, length: number, seen: { reasons: Set<string>; files: Set<string> }): Promise<Buffer> {
  const out: Buffer[] = [];
  let pos = offset;
  const end = offset + length;
  for (let calls = 0; pos < end; calls++) {
    assert.ok(calls < 1000, 'bounded');
    const m = await ops.extentMap(ref, p, pos, end - pos);
    checkIdentities(m);
    assert.equal(m.offset, pos);
    for (const e of m.extents) {
      if (e.kind === 'data') {
        seen.files.add(m.files[e.file].path);
        out.push(pread(path.join(store, m.files[e.file].path), e.fileOffset, e.length));
      } else if (e.kind === 'hole') out.push(Buffer.alloc(e.length));
      else {
        seen.reasons.add(e.reason);
        const parts: Buffer[] = [];
        for await (const c of ops.read(ref, p, e.offset, e.length)) parts.push(c);
        out.push(Buffer.concat(parts));
      }
    }
    pos += m.length;
    if (m.eof) break;
  }
  return Buffer.concat(out);
}

/** Every regular file under `root` (the kernel's view), mapped whole and in two windows, read back equal. */
async function compareTree(ref: LayerRef, root: string): Promise<{ files: number; reasons: Set<string>; stores: Set<string> }> {
  const seen = { reasons: new Set<string>(), files: new Set<string>() };
  let files = 0;
  const walk = async (rel: string): Promise<void> => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory() && e.name !== 'lost+found') await walk(r);
      if (!e.isFile()) continue;
      files++;
      const truth = fs.readFileSync(path.join(root, r));
      const size = truth.length;
      for (const [offset, length] of [[0, size + 10], [Math.floor(size / 3), 123_457], [Math.max(0, size - 4097), 8192]]) {
        const got = await readByMaps(ref, r, offset, length, seen);
        assert.ok(got.equals(truth.subarray(offset, offset + length)), `${r} ${offset}+${length}: the runs read from the store equal the kernel's bytes`);
      }
    }
  };
  await walk('');
  return { files, reasons: seen.reasons, stores: seen.files };
}

test('a dir: layer: each file maps to itself, and the runs read as the folder does', async () => {
  const r = await compareTree({ name: 'folder' }, path.join(store, 'folder'));
  assert.ok(r.files >= 10, `${r.files} files`);
  assert.deepEqual([...r.reasons], []);
  assert.ok([...r.stores].every((f) => f.startsWith('folder/d/')), [...r.stores].join(' '));
  const m = await ops.extentMap({ name: 'folder' }, '/d/f70000', 10);
  assert.deepEqual(m.extents, [{ kind: 'data', offset: 10, length: 69_990, file: 0, fileOffset: 10 }]);
  assert.equal(m.files[0].path, 'folder/d/f70000');
  assert.equal(m.attr?.size, 70_000);
  assert.ok(m.eof);
});

test('the store has one identity: every answer names it, and its marker is the file the resolver states', async () => {
  const id = await ops.storeIdentity();
  assert.match(id.storeId, /^[0-9a-f-]{36}$/);
  assert.equal(fs.readFileSync(path.join(store, '.strata/store-id'), 'utf8').trim(), id.storeId);
  assert.equal(id.marker.path, '.strata/store-id');
  assert.equal(id.marker.ino, Number(fs.statSync(path.join(store, '.strata/store-id'), { bigint: true }).ino));
  assert.equal((await ops.extentMap({ name: 'folder' }, '/d/f1')).storeId, id.storeId);
  // Any authenticated caller may ask which store it is (an agent does at start).
  assert.equal((await bob.storeIdentity()).storeId, id.storeId);
});

for (const fsName of ['ext4', 'xfs']) {
  test(`${fsName} in a qcow2 chain: the runs read from both image files equal the kernel's loop mount of the flattened disk`, { skip: images }, async () => {
    const r = await withLoopMount(flat, parts[fsName === 'ext4' ? 0 : 1], 'ro', (m) => compareTree({ name: `${fsName}-top` }, m));
    assert.ok(r.files >= 11, `${r.files} files`);
    assert.deepEqual([...r.reasons], []);
    assert.deepEqual([...r.stores].sort(), ['vm/base.qcow2', 'vm/top.qcow2']);
  });
}

async function refused(p: Promise<unknown>, code: number, errno: number): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StrataError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(err.errno, errno, err.message);
    return err.message;
  }
  assert.fail(`expected gRPC code ${code}`);
}

test('a caller without a grant is refused as a Read is (PERMISSION_DENIED, EACCES), and the refusal is audited', async () => {
  await refused(bob.readFile({ name: 'folder' }, '/d/f1'), GrpcCode.PERMISSION_DENIED, Errno.EACCES);
  const msg = await refused(bob.extentMap({ name: 'folder' }, '/d/f1'), GrpcCode.PERMISSION_DENIED, Errno.EACCES);
  assert.match(msg, /bob/);
  // Asking for siblings, and for the next directories' files too, changes nothing about who may ask.
  await refused(bob.extentMap({ name: 'folder' }, '/d/f1', 0, 0, 256, true), GrpcCode.PERMISSION_DENIED, Errno.EACCES);
  // A missing layer is refused the same way: the refusal tells nothing of what exists.
  await refused(bob.extentMap({ name: 'no-such-layer' }, '/d/f1'), GrpcCode.PERMISSION_DENIED, Errno.EACCES);
  const audit = fs.readFileSync(path.join(store, '.strata', 'audit', `${os.hostname()}.log`), 'utf8');
  assert.ok(audit.split('\n').some((l) => l.includes('"ExtentMap"') && l.includes('access.denied') && l.includes('"bob"')), audit);
  // With a grant, the same caller gets the map.
  await ops.grant('bob', 'read', { name: 'folder' });
  const m = await bob.extentMap({ name: 'folder' }, '/d/f1');
  assert.equal(m.files[0].path, 'folder/d/f1');
  await ops.revoke('bob', 'read', { name: 'folder' });
});

test('a LIVE layer is not mapped (FAILED_PRECONDITION), and still reads', async () => {
  const msg = await refused(ops.extentMap({ name: 'growing' }, '/log'), GrpcCode.FAILED_PRECONDITION, Errno.EOPNOTSUPP);
  assert.match(msg, /LIVE/);
  assert.equal((await ops.readFile({ name: 'growing' }, '/log')).length, 5000);
});

test('what is not a regular file is refused with the errno a Read gives', async () => {
  for (const [p, errno] of [['/d', Errno.EISDIR], ['/d/nope', Errno.ENOENT]] as const) {
    const err = await ops.extentMap({ name: 'folder' }, p).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof StrataError && err.errno === errno, `${p}: ${String(err)}`);
  }
});

test('strata layer extents LAYER PATH: the runs as text and as JSON', () => {
  assert.ok(resolver);
  const args = ['--resolver', resolver.address, '--timeout', '20', ...certs.cliArgs('ca', 'ops')];
  const text = strata([...args, 'layer', 'extents', 'folder', '/d/f70000']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /folder\/d\/f70000 @ 0/);
  const json = strata([...args, '--json', 'layer', 'extents', 'folder', '/d/sparse', '--offset', '100']);
  assert.equal(json.status, 0, json.stderr);
  const doc = JSON.parse(json.stdout) as { size: number; eof: boolean; files: { path: string }[]; extents: { offset: number; length: number; kind: string }[] };
  assert.equal(doc.size, 3_000_000);
  assert.ok(doc.eof);
  assert.equal(doc.extents[0].offset, 100);
  assert.equal(doc.extents.reduce((n, e) => n + e.length, 0), 3_000_000 - 100);
  assert.deepEqual(doc.files.map((f) => f.path), ['folder/d/sparse']);
  const live = strata([...args, 'layer', 'extents', 'growing', '/log']);
  assert.equal(live.status, 1);
  assert.match(live.stderr, /LIVE/);
});
