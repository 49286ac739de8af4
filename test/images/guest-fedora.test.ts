import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { startResolver, type ResolverProcess } from '@strata/harness';
import { apiTreeSource } from '../support/api-tree-source';
import { cliOf } from '../support/cli-runner';
import { ALL_FIELDS, compareTrees, readEngineTree, readKernelTree, type Tree } from '../support/tree-snapshot';
import { attachLoop, canLoopMount, hasTool, partitionDisk, run, withLoop, withLoopMount, type PartitionWindow } from './disk-fixture';

/**
 * A Fedora-style guest: /boot on ext4 and one btrfs filesystem holding the
 * `root` and `home` subvolumes, mounted by fstab with subvol=. The guest
 * tree against the kernel's btrfs mounts of those subvolumes composed by
 * hand; `--path` choosing a snapshot; a Windows-style NTFS disk inspected.
 */

const MIB = 1024 * 1024;
const canRun = canLoopMount('mkfs.btrfs', 'btrfs', 'sfdisk', 'qemu-img');
const canNtfs = canRun && ['mkntfs', 'ntfs-3g', 'mkfs.fat'].every(hasTool) && fs.existsSync('/dev/fuse');

let work: string;
let store: string;
let raw: string;
let parts: PartitionWindow[];
let resolver: ResolverProcess;
let client: StrataClient;

const cli = cliOf(() => resolver);

const attach = (w: PartitionWindow, file = raw, readOnly = false): string => attachLoop(file, w, readOnly);

before(async () => {
  if (!canRun) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-guest-fedora-'));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  raw = path.join(work, 'fedora.raw');
  parts = partitionDisk(raw, 400, 'label: gpt\nsize=60MiB, type=BC13C2FF-59E6-4262-A352-B275FD6F7172\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n');
  const bootUuid = withLoop(raw, parts[0], (dev) => {
    run('mkfs.ext4', ['-q', '-F', dev]);
    return run('blkid', ['-s', 'UUID', '-o', 'value', dev]).trim();
  });
  const dev = attach(parts[1]);
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-btrfs-top-'));
  try {
    run('mkfs.btrfs', ['-q', '-f', '-L', 'fedora', dev]);
    const fsUuid = run('blkid', ['-s', 'UUID', '-o', 'value', dev]).trim();
    run('mount', ['-o', 'compress=zstd', dev, top]);
    try {
      run('btrfs', ['-q', 'subvolume', 'create', path.join(top, 'root')]);
      run('btrfs', ['-q', 'subvolume', 'create', path.join(top, 'home')]);
      const r = path.join(top, 'root');
      fs.mkdirSync(path.join(r, 'etc'));
      fs.mkdirSync(path.join(r, 'usr/lib'), { recursive: true });
      fs.writeFileSync(path.join(r, 'usr/lib/os-release'), 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\nPRETTY_NAME="Fedora Linux 41 (Cloud Edition)"\n');
      fs.symlinkSync('../usr/lib/os-release', path.join(r, 'etc/os-release'));
      fs.writeFileSync(
        path.join(r, 'etc/fstab'),
        [
          `UUID=${fsUuid} / btrfs subvol=root,compress=zstd:1 0 0`,
          `UUID=${bootUuid} /boot ext4 defaults 1 2`,
          `UUID=${fsUuid} /home btrfs subvol=home,compress=zstd:1 0 0`,
        ].join('\n') + '\n',
      );
      for (const d of ['boot', 'home', 'var/lib']) fs.mkdirSync(path.join(r, d), { recursive: true });
      fs.writeFileSync(path.join(r, 'var/lib/compressible'), Buffer.alloc(3 * MIB, 0x61));
      for (let i = 0; i < 100; i++) fs.writeFileSync(path.join(r, 'etc', `conf-${i}`), `v${i}\n`.repeat(i));
      fs.mkdirSync(path.join(top, 'home/fedora'));
      fs.writeFileSync(path.join(top, 'home/fedora/.bashrc'), 'alias ll="ls -l"\n');
      fs.mkdirSync(path.join(top, 'snapshots'));
      run('btrfs', ['-q', 'subvolume', 'snapshot', '-r', r, path.join(top, 'snapshots/1')]);
      fs.writeFileSync(path.join(r, 'etc/after-snapshot'), 'new\n');
    } finally {
      run('umount', [top]);
    }
  } finally {
    run('losetup', ['-d', dev]);
    fs.rmdirSync(top);
  }
  await withLoopMount(raw, parts[0], 'rw', (m) => fs.writeFileSync(path.join(m, 'vmlinuz-6.11'), Buffer.alloc(50_000, 9)));
  run('qemu-img', ['convert', '-O', 'qcow2', raw, path.join(store, 'vm/fedora.qcow2')]);
  resolver = await startResolver({ store });
  client = new StrataClient({ resolver: resolver.address });
});

after(async () => {
  client?.close();
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** The kernel's btrfs mounts of subvolumes root and home and the ext4 /boot, composed at the fstab's places. */
function kernelTree(): Tree {
  const m = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fedora-k-'));
  const dev = attach(parts[1], raw, true);
  const boot = attach(parts[0], raw, true);
  try {
    run('mount', ['-o', 'ro,subvol=root', dev, m]);
    try {
      run('mount', ['-o', 'ro', boot, path.join(m, 'boot')]);
      try {
        run('mount', ['-o', 'ro,subvol=home', dev, path.join(m, 'home')]);
        try {
          return readKernelTree(m);
        } finally {
          run('umount', [path.join(m, 'home')]);
        }
      } finally {
        run('umount', [path.join(m, 'boot')]);
      }
    } finally {
      run('umount', [m]);
    }
  } finally {
    run('losetup', ['-d', dev]);
    run('losetup', ['-d', boot]);
    fs.rmdirSync(m);
  }
}

describe('a Fedora-style guest: /boot on ext4, root and home as btrfs subvolumes', { skip: canRun ? false : 'needs root, loop devices, btrfs-progs, qemu-img' }, () => {
  test('the guest tree matches the kernel mounts of the subvolumes composed at the same places', async () => {
    cli(['layer', 'create', '--source', 'qcow2:vm/fedora.qcow2', '--name', 'fedora']);
    const expected = kernelTree();
    const actual = await readEngineTree(apiTreeSource(client, { name: 'fedora' }));
    assert.ok(expected.has('/home/fedora/.bashrc') && expected.has('/boot/vmlinuz-6.11') && expected.has('/var/lib/compressible'));
    assert.deepEqual(compareTrees(expected, actual, ALL_FIELDS), []);
  });

  test('#2 --path chooses a subvolume or a snapshot, as mounting with subvol= does', () => {
    cli(['layer', 'create', '--source', 'qcow2:vm/fedora.qcow2#2', '--path', '/snapshots/1', '--name', 'fedora-snap1']);
    assert.match(cli(['ls', 'fedora-snap1', '/etc']).stdout, /conf-99/);
    assert.notEqual(cli(['stat', 'fedora-snap1', '/etc/after-snapshot'], false).status, 0);
    const got = JSON.parse(cli(['layer', 'get', 'fedora-snap1', '--json']).stdout) as { image: { filesystemType: string } };
    assert.equal(got.image.filesystemType, 'btrfs');
  });

  test('strata inspect: Fedora, the btrfs subvolumes at / and /home', () => {
    const r = JSON.parse(cli(['inspect', 'fedora', '--json']).stdout) as { os: { distribution: string; version: string }; mounts: { path: string; filesystemType: string; filesystemPath: string }[] };
    assert.equal(r.os.distribution, 'fedora');
    assert.equal(r.os.version, '41');
    assert.deepEqual(r.mounts.map((m) => `${m.path}:${m.filesystemType}:${m.filesystemPath}`), ['/:btrfs:/root', '/boot:ext4:/', '/home:btrfs:/home']);
  });
});

describe('a Windows-style guest on NTFS', { skip: canNtfs ? false : 'needs root, loop devices, mkntfs, ntfs-3g and /dev/fuse' }, () => {
  test('strata inspect names Windows; the disk without #N shows the system volume', async () => {
    const disk = path.join(work, 'windows.raw');
    const wparts = partitionDisk(disk, 120, 'label: gpt\nsize=40MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nsize=16MiB, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE\ntype=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n');
    const dev = attach(wparts[2], disk);
    const m = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ntfs-'));
    try {
      run('mkntfs', ['-F', '-Q', '-q', '-L', 'Windows', dev]);
      withLoop(disk, wparts[0], (esp) => run('mkfs.fat', ['-F', '16', '-n', 'SYSTEM', esp]));
      run('ntfs-3g', [dev, m]);
      try {
        fs.mkdirSync(path.join(m, 'Windows/System32/config'), { recursive: true });
        fs.writeFileSync(path.join(m, 'Windows/System32/config/SYSTEM'), Buffer.alloc(65536, 1));
        fs.mkdirSync(path.join(m, 'Users/Public/Documents'), { recursive: true });
        fs.writeFileSync(path.join(m, 'Users/Public/Documents/readme.txt'), 'hello windows\r\n');
      } finally {
        run('umount', [m]);
      }
    } finally {
      run('losetup', ['-d', dev]);
      fs.rmdirSync(m);
    }
    run('qemu-img', ['convert', '-O', 'vpc', '-o', 'subformat=dynamic', disk, path.join(store, 'vm/windows.vhd')]);
    const r = JSON.parse(cli(['inspect', 'image:vm/windows.vhd', '--json']).stdout) as { imageFormat: string; os: { type: string }; volumes: { volume: string; filesystemType: string; label: string }[]; mounts: { path: string; volume: string }[] };
    assert.equal(r.os.type, 'windows');
    assert.equal(r.imageFormat, 'vhd');
    assert.equal(r.volumes.find((v) => v.volume === '3')?.label, 'Windows');
    assert.deepEqual(r.mounts.map((x) => `${x.path}=#${x.volume}`), ['/=#3']);
    cli(['layer', 'create', '--source', 'vhd:vm/windows.vhd', '--name', 'windows']);
    assert.equal(cli(['cat', 'windows', '/Users/Public/Documents/readme.txt']).stdout, 'hello windows\r\n');
  });
});
