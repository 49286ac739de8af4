import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { StrataClient, operationsOver } from '@strata/client';
import { startResolver, type ResolverProcess } from '@strata/harness';
import { Catalog } from '@strata/layers';
import { layerRefToProto } from '@strata/protocol';
import { StoreView } from '@strata/agent/dist/store-view';

/**
 * One large file of a `dir:` layer read in 1 MiB pieces, four at a time (as
 * the agent fetches chunks), three ways against a real resolver process:
 * through a store view (extent map once, then positional reads of the store
 * file), Session reads, and the unary Read stream. Every way must give the
 * file's bytes; the rates are reported (STRATA_EXTENT_BENCH_MIB sets the
 * size, 64 MiB by default).
 */

const MIB = 1 << 20;
const SIZE = Number(process.env.STRATA_EXTENT_BENCH_MIB ?? 64) * MIB;
const CONCURRENCY = 4;

let work: string;
let resolver: ResolverProcess | undefined;
let client: StrataClient;
let digest: string;
/** The same file inside ext4 in a qcow2 image (mke2fs -d: no loop device needed). */
const imageSkip = ['mke2fs', 'qemu-img'].every((t) => {
  try {
    execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})
  ? false
  : 'needs mke2fs and qemu-img';

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-extent-rate-'));
  const store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'big'), { recursive: true });
  const fd = fs.openSync(path.join(store, 'big/file'), 'w');
  const hash = createHash('sha256');
  try {
    for (let at = 0; at < SIZE; at += 8 * MIB) {
      const b = randomBytes(Math.min(8 * MIB, SIZE - at));
      hash.update(b);
      fs.writeSync(fd, b);
    }
  } finally {
    fs.closeSync(fd);
  }
  digest = hash.digest('hex');
  const catalog = new Catalog(store);
  await catalog.init();
  await catalog.create({ source: 'dir:big', layerType: 'base', name: 'big' });
  if (!imageSkip) {
    const raw = path.join(work, 'fs.raw');
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', path.join(store, 'big'), raw, `${Math.ceil((SIZE * 1.2) / MIB) + 64}M`], { timeout: 300_000 });
    fs.mkdirSync(path.join(store, 'vm'));
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', raw, path.join(store, 'vm/fs.qcow2')], { timeout: 300_000 });
    fs.rmSync(raw);
    await catalog.create({ source: 'qcow2:vm/fs.qcow2', layerType: 'base', name: 'img' });
  }
  resolver = await startResolver({ store });
  client = new StrataClient({ resolver: resolver.address, deadlineMs: 60_000 });
});

after(async () => {
  client?.close();
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Pieces [i MiB, +1 MiB) read `CONCURRENCY` at a time; the file's digest and MB/s. */
async function readPieces(read: (offset: number) => Promise<Buffer>): Promise<{ digest: string; mbps: number }> {
  const pieces: Buffer[] = new Array<Buffer>(SIZE / MIB);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < pieces.length) {
        const i = next++;
        pieces[i] = await read(i * MIB);
      }
    }),
  );
  const ms = performance.now() - started;
  const hash = createHash('sha256');
  for (const p of pieces) hash.update(p);
  return { digest: hash.digest('hex'), mbps: SIZE / 1e6 / (ms / 1000) };
}

for (const [name, what] of [['big', 'dir: layer'], ['img', 'ext4 in qcow2']] as const) {
  test(`a ${SIZE / MIB} MiB file of a ${what}: store view runs vs Session reads vs the Read stream give the same bytes (rates reported)`, { skip: name === 'img' ? imageSkip : false }, async (t) => {
    const view = await StoreView.open(path.join(work, 'store'), client);
    const session = client.session();
    try {
      const ask = operationsOver(session);
      const layer = layerRefToProto({ name });
      const viaSession = async (offset: number, length = MIB): Promise<Buffer> => (await ask('read', { layer, path: Buffer.from('/file'), offset, length })).data;
      // Warm both: the resolver's chain view and the store file in the page cache.
      await viaSession(0);
      const reader = view.reader({ name });
      const direct = await readPieces((offset) => reader.read(Buffer.from('/file'), offset, MIB, (o, n) => viaSession(o, n)));
      const sessions = await readPieces((offset) => viaSession(offset));
      const started = performance.now();
      const whole = await client.readFile({ name }, '/file');
      const streamMbps = SIZE / 1e6 / ((performance.now() - started) / 1000);
      assert.equal(direct.digest, digest);
      assert.equal(sessions.digest, digest);
      assert.equal(createHash('sha256').update(whole).digest('hex'), digest);
      assert.equal(view.counters.resolverBytes, 0);
      assert.equal(view.counters.directBytes, SIZE);
      assert.equal(view.counters.maps, Math.ceil(SIZE / (64 * MIB)));
      t.diagnostic(`${what}: store view ${direct.mbps.toFixed(0)} MB/s, Session reads ${sessions.mbps.toFixed(0)} MB/s, Read stream ${streamMbps.toFixed(0)} MB/s (${SIZE / MIB} MiB, 1 MiB pieces x${CONCURRENCY}, page cache warm)`);
    } finally {
      session.close();
      await view.close();
    }
  });
}
