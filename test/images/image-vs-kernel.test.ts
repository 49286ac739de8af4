import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { isDirMode } from '@strata/posix';
import { Errno, isStrataError } from '@strata/errors';
import { mountOverlay, startResolver, strata, type ResolverProcess } from '@strata/harness';
import { apiTreeSource } from '../support/api-tree-source';
import { referenceDiff } from '../support/reference-diff';
import { ALL_FIELDS, compareTrees, readEngineTree, readKernelTree } from '../support/tree-snapshot';
import { makeGptDisk, mkfs, run, withLoopMount, type PartitionWindow } from './disk-fixture';

/**
 * VM disk images as layers, against the kernel: a GPT disk with ext4 in
 * partition 2, as a qcow2 base and two qcow2 snapshots made the way a
 * hypervisor's disk changes (only the changed clusters in each file), read
 * by the resolver and compared with the kernel's read-only loop mount of
 * each flattened disk, path by path and field by field.
 */

const LONG = 'n'.repeat(255);
const NOT_UTF8 = Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x74]);

let work: string;
let store: string;
let disk: PartitionWindow;
let resolver: ResolverProcess;
let client: StrataClient;

/** The CLI against the test's resolver; `check` asserts it succeeded. */
function cli(args: string[], check = true): ReturnType<typeof strata> {
  const r = strata(args, { STRATA_RESOLVER: resolver.address });
  if (check) assert.equal(r.status, 0, `strata ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** The guest's changes between snapshots, written through a read-write mount. */
function fillBase(m: string): void {
  fs.mkdirSync(path.join(m, 'etc/conf.d'), { recursive: true });
  fs.writeFileSync(path.join(m, 'etc/hostname'), 'vm1\n');
  fs.writeFileSync(path.join(m, 'etc/conf.d/net'), 'dhcp\n');
  fs.mkdirSync(path.join(m, 'var/log'), { recursive: true });
  fs.writeFileSync(path.join(m, 'var/log/boot.log'), Buffer.alloc(300_000, 0x61));
  fs.symlinkSync('../etc/hostname', path.join(m, 'var/host-link'));
  fs.symlinkSync(`/${'long-target/'.repeat(10)}end`, path.join(m, 'var/slow-link'));
  fs.writeFileSync(path.join(m, 'etc/shadow'), 'secret\n', { mode: 0o600 });
  fs.chownSync(path.join(m, 'etc/shadow'), 100000, 100001);
  fs.linkSync(path.join(m, 'etc/hostname'), path.join(m, 'etc/hostname.hard'));
  run('setfattr', ['-n', 'user.origin', '-v', 'base', path.join(m, 'etc/hostname')]);
  run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(m, 'etc/conf.d')]);
  run('mknod', [path.join(m, 'var/null'), 'c', '1', '3']);
  run('touch', ['-h', '-d', '1960-05-01 12:00:00.123456789', path.join(m, 'var/log/boot.log')]);
  const fd = fs.openSync(path.join(m, 'var/sparse'), 'w');
  fs.writeSync(fd, 'end', 200 * 1024 * 1024);
  fs.closeSync(fd);
  let deep = path.join(m, 'deep');
  for (let i = 0; i < 40; i++) deep = path.join(deep, `d${i}`);
  fs.mkdirSync(deep, { recursive: true });
  fs.writeFileSync(path.join(deep, 'leaf'), 'bottom');
  fs.writeFileSync(path.join(m, 'etc', LONG), 'long name');
  fs.writeFileSync(Buffer.concat([Buffer.from(path.join(m, 'etc')), Buffer.from('/'), NOT_UTF8]), 'latin1 name');
  const big = path.join(m, 'big');
  fs.mkdirSync(big);
  for (let i = 0; i < 3000; i++) fs.writeFileSync(path.join(big, `entry-${i}`), String(i));
}

function fillSnap1(m: string): void {
  fs.writeFileSync(path.join(m, 'etc/hostname'), 'vm1-renamed\n');
  fs.rmSync(path.join(m, 'var/log'), { recursive: true });
  fs.mkdirSync(path.join(m, 'srv'));
  fs.writeFileSync(path.join(m, 'srv/index.html'), '<h1>hi</h1>\n');
  run('touch', ['-h', '-d', '2100-01-01 00:00:00.987654321', path.join(m, 'srv/index.html')]);
  fs.chmodSync(path.join(m, 'etc/conf.d/net'), 0o640);
}

function fillSnap2(m: string): void {
  fs.unlinkSync(path.join(m, 'etc/hostname.hard'));
  for (let i = 0; i < 3000; i += 7) fs.unlinkSync(path.join(m, 'big', `entry-${i}`));
  run('setfattr', ['-n', 'user.origin', '-v', 'snap2', path.join(m, 'etc/hostname')]);
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-images-'));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  const raw = path.join(work, 'disk.raw');
  disk = makeGptDisk(raw, 320);
  mkfs(raw, disk, ['-t', 'ext4', '-b', '4096']);
  const steps: [string, (m: string) => void, string | undefined][] = [
    ['base', fillBase, undefined],
    ['snap1', fillSnap1, 'base.qcow2'],
    ['snap2', fillSnap2, 'snap1.qcow2'],
  ];
  for (const [name, fill, backing] of steps) {
    await withLoopMount(raw, disk, 'rw', fill);
    // Only what differs from the backing file lands in the new file, as in a hypervisor's snapshot.
    run('qemu-img', ['convert', '-O', 'qcow2', ...(backing ? ['-B', backing, '-F', 'qcow2'] : []), raw, `${name}.qcow2`], path.join(store, 'vm'));
    fs.copyFileSync(raw, path.join(work, `${name}.raw`));
  }
  resolver = await startResolver({ store });
  client = new StrataClient({ resolver: resolver.address });
  cli(['layer', 'create', '--source', 'qcow2:vm/base.qcow2#2', '--name', 'base']);
  cli(['layer', 'create', '--source', 'qcow2:vm/snap1.qcow2#2', '--type', 'snapshot', '--base', 'base', '--name', 'snap1']);
  // Without #N: the disk's only Linux filesystem partition.
  cli(['layer', 'create', '--source', 'qcow2:vm/snap2.qcow2', '--type', 'snapshot', '--base', 'snap1', '--name', 'snap2']);
});

after(async () => {
  client?.close();
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('VM disk image layers against the kernel loop mount', () => {
  for (const name of ['base', 'snap1', 'snap2']) {
    test(`${name}: every path, every field, xattrs, link targets, content`, async () => {
      // The disk as the snapshot shows it, flattened by qemu, mounted by the kernel.
      const flat = path.join(work, `${name}.flat`);
      run('qemu-img', ['convert', '-O', 'raw', path.join(store, 'vm', `${name}.qcow2`), flat]);
      const expected = await withLoopMount(flat, disk, 'ro', (m) => readKernelTree(m));
      fs.rmSync(flat);
      const actual = await readEngineTree(apiTreeSource(client, { name }));
      assert.ok(expected.size > 2500);
      assert.deepEqual(compareTrees(expected, actual, ALL_FIELDS), []);
    });
  }

  test('errno of missing and through-a-file paths, as the kernel gives them', async () => {
    for (const [p, errno] of [
      ['/no/such', Errno.ENOENT],
      ['/etc/hostname/x', Errno.ENOTDIR],
      ['/var/log', Errno.ENOENT],
    ] as const) {
      const err = await client.stat({ name: 'snap1' }, p).catch((e: unknown) => e);
      assert.ok(isStrataError(err) && err.errno === errno, `${p}: ${String(err)}`);
    }
  });

  test('strata diff between two image snapshots equals the changes of the two kernel mounts', async () => {
    const flats = ['snap1', 'snap2'].map((n) => path.join(work, `${n}.diffflat`));
    run('qemu-img', ['convert', '-O', 'raw', path.join(store, 'vm/snap1.qcow2'), flats[0]]);
    run('qemu-img', ['convert', '-O', 'raw', path.join(store, 'vm/snap2.qcow2'), flats[1]]);
    const expected = await withLoopMount(flats[0], disk, 'ro', (a) => withLoopMount(flats[1], disk, 'ro', (b) => referenceDiff(a, b)));
    for (const f of flats) fs.rmSync(f);
    const out = JSON.parse(cli(['diff', 'snap1', 'snap2', '--json']).stdout) as { changes: { path: string; pathBase64?: string; kind: string }[] };
    const bytesOf = (c: { path: string; pathBase64?: string }): Buffer => (c.pathBase64 ? Buffer.from(c.pathBase64, 'base64') : Buffer.from(c.path, 'utf8'));
    const actual = out.changes.map((c) => `${c.kind} ${JSON.stringify(bytesOf(c).toString('latin1'))}`);
    assert.ok(expected.length > 400, `diff has ${expected.length} changes`);
    assert.deepEqual(actual, expected);
  });

  test('a --path subtree and a dir: overlay over an image snapshot match the kernel', async () => {
    cli(['layer', 'create', '--source', 'qcow2:vm/snap1.qcow2#2', '--path', '/etc', '--type', 'snapshot', '--base', 'base', '--name', 'snap1-etc']);
    const fix = path.join(store, 'fix');
    fs.mkdirSync(path.join(fix, 'conf.d'), { recursive: true });
    fs.writeFileSync(path.join(fix, 'hostname'), 'fixed\n');
    fs.writeFileSync(path.join(fix, 'conf.d/extra'), 'added\n');
    run('mknod', [path.join(fix, 'shadow'), 'c', '0', '0']);
    cli(['layer', 'create', '--source', 'dir:fix', '--type', 'overlay', '--base', 'snap1-etc', '--name', 'fixed']);
    const flat = path.join(work, 'snap1.overlayflat');
    run('qemu-img', ['convert', '-O', 'raw', path.join(store, 'vm/snap1.qcow2'), flat]);
    try {
      await withLoopMount(flat, disk, 'ro', async (m) => {
        const sub = readKernelTree(path.join(m, 'etc'));
        assert.deepEqual(compareTrees(sub, await readEngineTree(apiTreeSource(client, { name: 'snap1-etc' })), ALL_FIELDS), []);
        const merged = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ovl-'));
        const unmount = await mountOverlay(work, [fix, path.join(m, 'etc')], merged);
        try {
          const expected = readKernelTree(merged);
          const actual = await readEngineTree(apiTreeSource(client, { name: 'fixed' }));
          assert.ok(!expected.has('/shadow') && expected.has('/conf.d/extra'));
          // The layers sit on two filesystems (the store and the image), so the kernel numbers merged
          // directories itself (no xino); strata keeps the topmost supplier's inode, as on one filesystem.
          const mergedDirIno = (_p: string, info: { mode: number }): ('ino')[] => (isDirMode(info.mode) ? ['ino'] : []);
          assert.deepEqual(compareTrees(expected, actual, ALL_FIELDS, mergedDirIno), []);
        } finally {
          await unmount();
          fs.rmdirSync(merged);
        }
      });
    } finally {
      fs.rmSync(flat);
    }
  });

  test('layer create refuses what it can see is wrong, with one clear line', () => {
    const cases: [string[], RegExp][] = [
      [['--source', 'qcow2:vm/snap1.qcow2#2', '--name', 'orphan'], /backing file/],
      [['--source', 'qcow2:vm/snap2.qcow2#2', '--type', 'snapshot', '--base', 'base', '--name', 'wrongbase'], /base of an image snapshot is the layer of its backing file/],
      [['--source', 'qcow2:vm/base.qcow2#7', '--name', 'nopart'], /no partition #7.*#1.*#2/],
      [['--source', 'qcow2:vm/base.qcow2#1', '--name', 'notfs'], /partition #1 of vm\/base\.qcow2 holds/],
      [['--source', 'raw:vm/missing.img', '--name', 'missing'], /does not exist in the store/],
      [['--source', 'qcow2:vm/base.qcow2#2', '--path', '/etc/hostname', '--name', 'filepath'], /not a directory/],
    ];
    for (const [args, why] of cases) {
      const r = cli(['layer', 'create', ...args], false);
      assert.notEqual(r.status, 0, args.join(' '));
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], why);
    }
  });
});
