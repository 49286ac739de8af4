import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { isRegMode } from '@strata/posix';
import { isStrataError } from '@strata/errors';
import { startResolver, strata, type ResolverProcess } from '@strata/harness';
import { run } from './disk-fixture';

/**
 * Every image is untrusted input. Damaged and hostile images get a clear
 * error for the layer or the path, never a crash, a hang, or a byte from
 * outside the store; the resolver keeps answering everything else.
 */

/** Something outside the store that no answer may ever contain. */
const CANARY = 'strata-canary-outside-the-store';

let work: string;
let store: string;
let resolver: ResolverProcess;
let client: StrataClient;

function cli(args: string[]): ReturnType<typeof strata> {
  return strata(args, { STRATA_RESOLVER: resolver.address });
}

/** A small ext4 filesystem image (no partition table) with a few files, directories and links. */
function makeFsImage(file: string): void {
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fuzz-tree-'));
  try {
    for (let d = 0; d < 6; d++) {
      fs.mkdirSync(path.join(tree, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 12; f++) fs.writeFileSync(path.join(tree, `d${d}`, `f${f}`), `file ${d}/${f}\n`.repeat(f * 40 + 1));
      fs.symlinkSync(`../d${(d + 1) % 6}/f1`, path.join(tree, `d${d}`, 'sub', 'link'));
    }
    run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', '-N', '256', '-d', tree, file, '4M']);
  } finally {
    fs.rmSync(tree, { recursive: true, force: true });
  }
}

/** Seeded pseudo-random numbers (mulberry32), so a failing run can be repeated with STRATA_FUZZ_SEED. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Reads everything a layer shows through the API, bounded in entries; returns the bytes seen. */
async function readAll(layer: string): Promise<Buffer[]> {
  const seen: Buffer[] = [];
  let entries = 0;
  for await (const batch of client.walk({ name: layer }, '/', { includeLinkTargets: true })) {
    for (const e of batch) {
      if (++entries > 2000) return seen;
      if (e.linkTarget.length > 0) seen.push(e.linkTarget);
      if (e.attr && isRegMode(e.attr.mode)) {
        for await (const chunk of client.read({ name: layer }, e.path, 0, 1 << 20)) seen.push(chunk);
      }
    }
  }
  return seen;
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-hostile-'));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  fs.writeFileSync(path.join(work, 'outside.raw'), Buffer.alloc(4 << 20, CANARY));
  makeFsImage(path.join(store, 'vm/good.img'));
  resolver = await startResolver({ store });
  client = new StrataClient({ resolver: resolver.address, deadlineMs: 5000 });
  assert.equal(cli(['layer', 'create', '--source', 'raw:vm/good.img', '--name', 'good']).status, 0);
});

after(async () => {
  client?.close();
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('hostile disk images', () => {
  test('backing files outside the store are refused at create, and again at read after the image is changed', async () => {
    const vm = path.join(store, 'vm');
    run('qemu-img', ['convert', '-O', 'qcow2', 'good.img', 'base.qcow2'], vm);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'snap.qcow2'], vm);
    assert.equal(cli(['layer', 'create', '--source', 'qcow2:vm/base.qcow2', '--name', 'qbase']).status, 0);
    assert.equal(cli(['layer', 'create', '--source', 'qcow2:vm/snap.qcow2', '--type', 'snapshot', '--base', 'qbase', '--name', 'qsnap']).status, 0);
    for (const [name, backing] of [
      ['dotdot', '../../outside.raw'],
      ['absolute', path.join(work, 'outside.raw')],
    ] as const) {
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', 'raw', `${name}.qcow2`, '4M'], vm);
      const r = cli(['layer', 'create', '--source', `qcow2:vm/${name}.qcow2`, '--type', 'snapshot', '--base', 'qbase', '--name', name]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /outside the store|absolute path/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    fs.symlinkSync(path.join(work, 'outside.raw'), path.join(vm, 'link-out.raw'));
    assert.match(cli(['layer', 'create', '--source', 'raw:vm/link-out.raw', '--name', 'linkout']).stderr, /out of the store/);

    // The snapshot's backing file is pointed outside after the layer was created: a fresh resolver (nothing cached) refuses to read it.
    run('qemu-img', ['rebase', '-u', '-b', '../../outside.raw', '-F', 'raw', 'snap.qcow2'], vm);
    await resolver.stop();
    resolver = await startResolver({ store });
    client.close();
    client = new StrataClient({ resolver: resolver.address, deadlineMs: 5000 });
    const err = await client.stat({ name: 'qsnap' }, '/').catch((e: unknown) => e);
    assert.ok(isStrataError(err), String(err));
    assert.match(err.message, /outside the store/);
    assert.equal((await client.stat({ name: 'good' }, '/d0/f1')).size > 0, true);
  });

  test('seeded fuzz: flipped metadata bytes give answers or clear errors, the resolver keeps serving, nothing leaks from outside', async () => {
    const seed = Number(process.env.STRATA_FUZZ_SEED ?? 20261202);
    const rnd = random(seed);
    const good = fs.readFileSync(path.join(store, 'vm/good.img'));
    // Superblock, group descriptors, bitmaps, inode table and the first directory blocks of a 1 KiB-block filesystem.
    const metadataEnd = 160 * 1024;
    const deadline = Date.now() + 15_000;
    let created = 0;
    let refused = 0;
    let pathErrors = 0;
    for (let i = 0; i < 60 && Date.now() < deadline; i++) {
      const img = Buffer.from(good);
      const flips = 1 + Math.floor(rnd() * 24);
      for (let k = 0; k < flips; k++) img[1024 + Math.floor(rnd() * (metadataEnd - 1024))] ^= 1 << Math.floor(rnd() * 8);
      const name = `fuzz-${i}`;
      fs.writeFileSync(path.join(store, 'vm', `${name}.img`), img);
      const r = cli(['layer', 'create', '--source', `raw:vm/${name}.img`, '--name', name]);
      if (r.status !== 0) {
        // A refusal is one clear line naming an errno, never a stack trace.
        assert.equal(r.stderr.trim().split('\n').length, 1, `seed ${seed} iteration ${i}: ${r.stderr}`);
        assert.match(r.stderr, /\(E[A-Z]+\)$/m, `seed ${seed} iteration ${i}`);
        refused++;
        continue;
      }
      created++;
      const seen = await readAll(name).catch((e: unknown) => {
        assert.ok(isStrataError(e), `seed ${seed} iteration ${i}: ${String(e)}`);
        pathErrors++;
        return [] as Buffer[];
      });
      for (const b of seen) assert.ok(!b.includes(CANARY), `seed ${seed} iteration ${i}: an answer contains bytes from outside the store`);
      // The resolver still answers a healthy layer after every damaged one.
      assert.ok((await client.stat({ name: 'good' }, '/d3/sub/link')).size > 0, `seed ${seed} iteration ${i}`);
    }
    assert.ok(created + refused >= 10, `only ${created + refused} iterations ran`);
    assert.equal(resolver.child.exitCode, null, 'the resolver is still running');
    assert.deepEqual(resolver.logs.filter((l) => l.event === 'rpc.internal'), [], 'no internal errors');
    process.stdout.write(`# fuzz seed ${seed}: ${created} damaged images served (${pathErrors} walks ended by an error), ${refused} refused at create\n`);
  });
});
