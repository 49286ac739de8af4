import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startResolver, strata, type ResolverProcess } from '@strata/harness';
import { ImageSource, Projection, diff, type Change } from '@strata/traversal';
import { referenceDiff } from '../support/reference-diff';
import { fsyncAll, makeGptDisk, mkfs, run, snapshotFromRaw, withLoopMount, type PartitionWindow } from './disk-fixture';

/**
 * `strata diff` of a qcow2 snapshot over its base looks only where the
 * snapshot's own clusters say something can differ. Its answer must be the
 * full walk's, change for change: checked against the engine's full walk
 * of both trees and against a naive double walk of the kernel's mounts,
 * for a change of every kind a guest makes, and for a snapshot taken while
 * the guest was running (its journal needs recovery).
 */

let work: string;
let store: string;
let disk: PartitionWindow;
let resolver: ResolverProcess;

function cli(args: string[]): string {
  const r = strata(args, { STRATA_RESOLVER: resolver.address });
  assert.equal(r.status, 0, `strata ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A base a real system could have: nested directories, files of many sizes, links. */
function fillBase(m: string): void {
  for (let d = 0; d < 60; d++) {
    const dir = path.join(m, `srv/app${d % 6}/d${d}`);
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 40; f++) fs.writeFileSync(path.join(dir, `f${f}.txt`), `file ${d}/${f}\n`.repeat(1 + ((d * 7 + f * 13) % 300)));
    fs.symlinkSync(`f0.txt`, path.join(dir, 'link'));
  }
  fs.mkdirSync(path.join(m, 'etc'));
  fs.writeFileSync(path.join(m, 'etc/hosts'), '127.0.0.1 localhost\n');
  fs.writeFileSync(path.join(m, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.linkSync(path.join(m, 'etc/passwd'), path.join(m, 'srv/passwd.hard'));
  fs.mkdirSync(path.join(m, 'var/log'), { recursive: true });
  fs.writeFileSync(path.join(m, 'var/log/syslog'), 'boot\n');
  fs.mkdirSync(path.join(m, 'doomed/sub/deeper'), { recursive: true });
  for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(m, 'doomed/sub/deeper', `x${i}`), 'x');
}

/** One change of every kind, most of them deep in directories that themselves stay the same. */
function changeSnap1(m: string): void {
  const deep = (d: number, f: number): string => path.join(m, `srv/app${d % 6}/d${d}/f${f}.txt`);
  // Same size, new bytes (the parent directory is untouched).
  const same = fs.readFileSync(deep(3, 5));
  fs.writeFileSync(deep(3, 5), Buffer.from(same.toString('latin1').toUpperCase(), 'latin1'));
  fs.appendFileSync(path.join(m, 'var/log/syslog'), 'kernel: hello\n');
  fs.chmodSync(deep(10, 1), 0o600);
  fs.chownSync(deep(11, 2), 1234, 5678);
  run('setfattr', ['-n', 'user.tag', '-v', 'changed', deep(12, 3)]);
  // A new hard link: the file's nlink and ctime move in every directory that lists it.
  fs.linkSync(deep(13, 4), path.join(m, 'etc/extra-link'));
  fs.renameSync(deep(14, 6), path.join(m, 'srv/app0/d0/moved.txt'));
  fs.unlinkSync(deep(15, 7));
  fs.rmSync(path.join(m, 'doomed'), { recursive: true });
  fs.mkdirSync(path.join(m, 'opt/new/tree'), { recursive: true });
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(m, 'opt/new/tree', `n${i}`), `new ${i}\n`);
  fs.symlinkSync('/etc/hosts', path.join(m, 'opt/hosts-link'));
  fs.truncateSync(deep(16, 8), 0);
  // A whole-second mtime set back to the old one: only the content tells the change.
  const st = fs.statSync(deep(17, 9));
  fs.writeFileSync(deep(17, 9), Buffer.alloc(st.size, 0x5a));
  fs.utimesSync(deep(17, 9), Math.floor(st.atimeMs / 1000), Math.floor(st.mtimeMs / 1000));
  fs.writeFileSync(path.join(m, 'etc/passwd'), 'root:x:0:0::/root:/bin/bash\n');
  fs.renameSync(path.join(m, 'srv/app5/d59'), path.join(m, 'etc/d59-moved'));
}

/** Written while the guest stays mounted: the snapshot is a crash-consistent copy. */
function changeSnap2(m: string): void {
  fs.writeFileSync(path.join(m, 'etc/hosts'), '127.0.0.1 localhost vm\n');
  for (let i = 0; i < 20; i++) fs.unlinkSync(path.join(m, `srv/app1/d1/f${i}.txt`));
  fs.mkdirSync(path.join(m, 'var/spool'));
  fs.writeFileSync(path.join(m, 'var/spool/job'), 'queued\n');
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-imgdiff-'));
  store = path.join(work, 'store');
  const vm = path.join(store, 'vm');
  fs.mkdirSync(vm, { recursive: true });
  const raw = path.join(work, 'disk.raw');
  disk = makeGptDisk(raw, 128);
  mkfs(raw, disk, ['-t', 'ext4', '-b', '4096']);
  await withLoopMount(raw, disk, 'rw', fillBase);
  run('qemu-img', ['convert', '-O', 'qcow2', raw, 'base.qcow2'], vm);
  fs.copyFileSync(raw, path.join(work, 'base.raw'));
  await withLoopMount(raw, disk, 'rw', changeSnap1);
  fs.copyFileSync(raw, path.join(work, 'snap1.raw'));
  // Only the clusters the guest changed, as a hypervisor's snapshot holds them.
  snapshotFromRaw(vm, 'base.qcow2', path.join(work, 'base.raw'), path.join(work, 'snap1.raw'), 'snap1.qcow2');
  // The running guest: a long commit interval keeps committed metadata in the journal, not yet in place.
  const dev = run('losetup', ['-o', String(disk.start), '--sizelimit', String(disk.size), '-f', '--show', raw]).trim();
  const mnt = fs.mkdtempSync(path.join(work, 'guest-'));
  try {
    run('mount', ['-o', 'rw,commit=300', dev, mnt]);
    try {
      changeSnap2(mnt);
      fsyncAll(mnt);
      fs.copyFileSync(raw, path.join(work, 'snap2.raw'));
    } finally {
      run('umount', [mnt]);
    }
  } finally {
    run('losetup', ['-d', dev]);
  }
  snapshotFromRaw(vm, 'snap1.qcow2', path.join(work, 'snap1.raw'), path.join(work, 'snap2.raw'), 'snap2.qcow2');
  // The same change as qemu-img convert -B makes it: a snapshot that owns every cluster (the delta path must still agree).
  run('qemu-img', ['convert', '-O', 'qcow2', '-B', 'base.qcow2', '-F', 'qcow2', path.join(work, 'snap1.raw'), 'snap1-whole.qcow2'], vm);
  resolver = await startResolver({ store });
  cli(['layer', 'create', '--source', 'qcow2:vm/base.qcow2#2', '--name', 'base']);
  cli(['layer', 'create', '--source', 'qcow2:vm/snap1.qcow2#2', '--type', 'snapshot', '--base', 'base', '--name', 'snap1']);
  cli(['layer', 'create', '--source', 'qcow2:vm/snap2.qcow2#2', '--type', 'snapshot', '--base', 'snap1', '--name', 'snap2']);
  cli(['layer', 'create', '--source', 'qcow2:vm/snap1-whole.qcow2#2', '--type', 'snapshot', '--base', 'base', '--name', 'snap1-whole']);
});

after(async () => {
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const line = (kind: string, p: Buffer): string => `${kind} ${JSON.stringify(p.toString('latin1'))}`;

function cliDiff(from: string, to: string): string[] {
  const out = JSON.parse(cli(['diff', from, to, '--json'])) as { changes: { path: string; pathBase64?: string; kind: string }[] };
  return out.changes.map((c) => line(c.kind, c.pathBase64 ? Buffer.from(c.pathBase64, 'base64') : Buffer.from(c.path, 'utf8')));
}

test('a snapshot made by snapshotFromRaw owns only the clusters its guest changed', () => {
  const map = JSON.parse(run('qemu-img', ['map', '--output=json', path.join(store, 'vm/snap1.qcow2')])) as { depth: number; length: number }[];
  const own = map.filter((e) => e.depth === 0).reduce((n, e) => n + e.length, 0);
  assert.ok(own > 0 && own < (disk.size + disk.start) / 10, `the snapshot owns ${own} of ${disk.size + disk.start} bytes`);
});

async function openImage(name: string): Promise<ImageSource> {
  return ImageSource.open({ storeRoot: store, image: `vm/${name}.qcow2`, format: 'qcow2', partition: 2 });
}

/** The engine's diff in process, with or without the snapshot's hint. */
async function engineDiff(from: string, to: string, deltas: boolean): Promise<{ lines: string[]; changes: Change[] }> {
  const [a, b] = await Promise.all([openImage(from), openImage(to)]);
  try {
    const changes: Change[] = [];
    for await (const batch of diff(new Projection([a]), new Projection([b]), '/', { deltas })) changes.push(...batch);
    return { lines: changes.map((c) => line(c.kind, c.path)), changes };
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

/** The kernel's view of a raw disk; a disk whose journal needs recovery is replayed onto a scratch copy. */
async function kernelDiff(from: string, to: string): Promise<string[]> {
  const copies = [from, to].map((n) => {
    const c = path.join(work, `${n}.scratch`);
    fs.copyFileSync(path.join(work, `${n}.raw`), c);
    return c;
  });
  try {
    // A writable loop device: the kernel's read-only mount replays the journal onto it.
    return await withLoopMount(copies[0], disk, 'rw-replay', (a) => withLoopMount(copies[1], disk, 'rw-replay', (b) => referenceDiff(a, b)));
  } finally {
    for (const c of copies) fs.rmSync(c, { force: true });
  }
}

describe('diff of a qcow2 snapshot over its base, by its own clusters', () => {
  for (const [from, to] of [
    ['base', 'snap1'],
    ['snap1', 'snap2'],
    ['base', 'snap2'],
    ['base', 'snap1-whole'],
  ] as const) {
    test(`${from} -> ${to}: the CLI, the engine's full walk and the kernel's mounts agree`, async () => {
      const expected = await kernelDiff(from, to.replace('-whole', ''));
      const full = await engineDiff(from, to, false);
      const fast = await engineDiff(from, to, true);
      assert.ok(expected.length >= 10, `the change has ${expected.length} entries`);
      assert.deepEqual(full.lines, expected, 'the full walk against the kernel');
      assert.deepEqual(fast.lines, full.lines, 'the delta path against the full walk');
      // Attributes too, not only the paths.
      assert.deepEqual(fast.changes, full.changes);
      assert.deepEqual(cliDiff(from, to), expected, 'strata diff against the kernel');
    });
  }

  test('a snapshot taken from a running guest needs journal recovery, and strata reads it recovered', async () => {
    const snap2 = await openImage('snap2');
    try {
      assert.equal(snap2.needsRecovery, true);
    } finally {
      await snap2.close();
    }
    assert.ok(cliDiff('snap1', 'snap2').includes(line('added', Buffer.from('/var/spool/job'))));
  });

  test('a diff in the other direction (snapshot -> base) takes the full walk and is the exact inverse', async () => {
    const forward = cliDiff('base', 'snap1');
    const backward = cliDiff('snap1', 'base');
    const kinds = (l: string): string => l.split(' ')[0];
    assert.equal(backward.filter((l) => kinds(l) === 'modified').length, forward.filter((l) => kinds(l) === 'modified').length);
    assert.ok(backward.includes(line('added', Buffer.from('/doomed'))));
    assert.ok(forward.includes(line('deleted', Buffer.from('/doomed'))));
  });
});
