import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { startResolver, type ResolverProcess } from '@strata/harness';
import { apiTreeSource } from '../support/api-tree-source';
import { cliOf } from '../support/cli-runner';
import { ALL_FIELDS, compareTrees, readEngineTree, readKernelTree } from '../support/tree-snapshot';
import { canLoopMount, partitionDisk, run, withLoop, withLoopMount, type PartitionWindow } from './disk-fixture';

/**
 * A disk given without #N that holds an operating system shows the tree the
 * guest mounts: its root filesystem with what its fstab mounts from the same
 * disk at each mountpoint, compared with the kernel's loop mounts of the
 * same partitions composed by hand at the same places.
 */

const canRun = canLoopMount('sfdisk', 'mke2fs', 'qemu-img', 'blkid');

let work: string;
let store: string;
let raw: string;
let parts: PartitionWindow[];
let resolver: ResolverProcess;
let client: StrataClient;

const cli = cliOf(() => resolver);

/** GPT: #1 BIOS boot, #2 /boot (ext4, label "boot"), #3 / (ext4), #4 /srv/data (ext2, by PARTLABEL), #5 /var/tmp (ext4 in a swap-typed partition, by PARTUUID). */
function makeDisk(file: string): PartitionWindow[] {
  const script = [
    'label: gpt',
    'size=1MiB, type=21686148-6449-6E6F-744E-656564454649',
    'size=40MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot',
    'size=100MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root',
    'size=30MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=srvdata',
    'type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap',
    '',
  ].join('\n');
  return partitionDisk(file, 200, script);
}

/** blkid's PARTUUID of partition N of the test disk. */
function partUuid(n: number): string {
  return JSON.parse(run('sfdisk', ['-J', raw])).partitiontable.partitions[n - 1].uuid.toLowerCase() as string;
}

function mkfsOn(w: PartitionWindow, args: string[]): string {
  return withLoop(raw, w, (dev) => {
    run('mke2fs', ['-q', '-F', ...args, dev]);
    return run('blkid', ['-s', 'UUID', '-o', 'value', dev]).trim();
  });
}

before(async () => {
  if (!canRun) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-guest-'));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  raw = path.join(work, 'guest.raw');
  parts = makeDisk(raw);
  const bootUuid = mkfsOn(parts[1], ['-t', 'ext4', '-L', 'boot']);
  mkfsOn(parts[2], ['-t', 'ext4', '-L', 'rootfs']);
  mkfsOn(parts[3], ['-t', 'ext2']);
  mkfsOn(parts[4], ['-t', 'ext4']);
  await withLoopMount(raw, parts[2], 'rw', (m) => {
    fs.mkdirSync(path.join(m, 'etc'));
    fs.mkdirSync(path.join(m, 'usr/lib'), { recursive: true });
    fs.writeFileSync(path.join(m, 'usr/lib/os-release'), 'NAME="Test Linux"\nID=testlinux\nVERSION_ID="9.4"\nPRETTY_NAME="Test Linux 9.4 (Guest)"\n');
    fs.symlinkSync('../usr/lib/os-release', path.join(m, 'etc/os-release'));
    fs.writeFileSync(path.join(m, 'etc/hostname'), 'guest-vm\n');
    fs.writeFileSync(
      path.join(m, 'etc/fstab'),
      [
        '# /etc/fstab of a test guest',
        'LABEL=rootfs / ext4 defaults 1 1',
        `UUID=${bootUuid} /boot ext4 defaults,nodev 1 2`,
        'PARTLABEL=srvdata /srv/data ext2 defaults 0 2',
        `PARTUUID=${partUuid(5)} /var/tmp ext4 defaults 0 2`,
        '/dev/vda5 none swap sw 0 0',
        'proc /proc proc defaults 0 0',
        'fileserver:/export /mnt/nfs nfs defaults 0 0',
        'UUID=0b2e3f9a-0000-4000-8000-000000000000 /home xfs defaults 0 0',
      ].join('\n') + '\n',
    );
    // What a mount hides: the root filesystem's own /boot has content that the kernel's composed tree covers.
    fs.mkdirSync(path.join(m, 'boot'));
    fs.writeFileSync(path.join(m, 'boot/hidden-by-mount'), 'covered');
    fs.mkdirSync(path.join(m, 'srv/data'), { recursive: true });
    fs.mkdirSync(path.join(m, 'var/tmp'), { recursive: true });
    fs.mkdirSync(path.join(m, 'home'));
    for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(m, 'etc', `conf-${i}`), `value ${i}\n`);
  });
  await withLoopMount(raw, parts[1], 'rw', (m) => {
    fs.writeFileSync(path.join(m, 'vmlinuz-6.1'), Buffer.alloc(100_000, 7));
    fs.mkdirSync(path.join(m, 'grub2'));
    fs.writeFileSync(path.join(m, 'grub2/grub.cfg'), 'set default=0\n');
  });
  await withLoopMount(raw, parts[4], 'rw', (m) => fs.writeFileSync(path.join(m, 'scratch'), 'by partuuid\n'));
  await withLoopMount(raw, parts[3], 'rw', (m) => {
    fs.writeFileSync(path.join(m, 'index.html'), '<p>served</p>\n');
  });
  run('qemu-img', ['convert', '-O', 'qcow2', raw, path.join(store, 'vm/guest.qcow2')]);
  resolver = await startResolver({ store });
  client = new StrataClient({ resolver: resolver.address });
});

after(async () => {
  client?.close();
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** The kernel's mounts of the guest's filesystems composed by hand at the fstab's mountpoints. */
async function kernelGuestTree(): Promise<ReturnType<typeof readKernelTree>> {
  return withLoopMount(raw, parts[2], 'ro', (m) =>
    withLoopMount(raw, parts[1], 'ro', async (boot) => {
      run('mount', ['--bind', boot, path.join(m, 'boot')]);
      try {
        return await withLoopMount(raw, parts[3], 'ro', (srv) =>
          withLoopMount(raw, parts[4], 'ro', (tmp) => {
            run('mount', ['--bind', srv, path.join(m, 'srv/data')]);
            try {
              run('mount', ['--bind', tmp, path.join(m, 'var/tmp')]);
              try {
                return readKernelTree(m);
              } finally {
                run('umount', [path.join(m, 'var/tmp')]);
              }
            } finally {
              run('umount', [path.join(m, 'srv/data')]);
            }
          }),
        );
      } finally {
        run('umount', [path.join(m, 'boot')]);
      }
    }),
  );
}

describe('the guest tree of a disk with an operating system', { skip: canRun ? false : 'needs root and loop devices' }, () => {
  test('a disk without #N shows /, /boot and /srv/data as the guest mounts them, field by field', async () => {
    cli(['layer', 'create', '--source', 'qcow2:vm/guest.qcow2', '--name', 'guest']);
    const expected = await kernelGuestTree();
    const actual = await readEngineTree(apiTreeSource(client, { name: 'guest' }));
    assert.ok(expected.has('/boot/grub2/grub.cfg') && expected.has('/srv/data/index.html') && expected.has('/var/tmp/scratch') && !expected.has('/boot/hidden-by-mount'));
    assert.deepEqual(compareTrees(expected, actual, ALL_FIELDS), []);
  });

  test('strata inspect names the OS, every volume, where the guest mounts it and what is absent', () => {
    const r = JSON.parse(cli(['inspect', 'guest', '--json']).stdout) as {
      imageFormat: string;
      partitionScheme: string;
      os: { type: string; distribution: string; version: string; product: string; hostname: string };
      volumes: { volume: string; filesystemType: string; label: string; uuid: string; partitionLabel: string; mountpoint: string; holds: string }[];
      mounts: { path: string; volume: string }[];
      absent: { path: string; reason: string }[];
    };
    assert.equal(r.imageFormat, 'qcow2');
    assert.equal(r.partitionScheme, 'gpt');
    assert.deepEqual(r.os, { type: 'linux', distribution: 'testlinux', version: '9.4', product: 'Test Linux 9.4 (Guest)', hostname: 'guest-vm' });
    assert.deepEqual(r.mounts.map((m) => `${m.path}=#${m.volume}`), ['/=#3', '/boot=#2', '/srv/data=#4', '/var/tmp=#5']);
    const boot = r.volumes.find((v) => v.volume === '2');
    assert.equal(boot?.label, 'boot');
    assert.equal(boot?.filesystemType, 'ext4');
    assert.equal(boot?.mountpoint, '/boot');
    assert.match(boot?.uuid ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(r.volumes.find((v) => v.volume === '4')?.filesystemType, 'ext2');
    assert.equal(r.volumes.find((v) => v.volume === '5')?.filesystemType, 'ext4');
    assert.deepEqual(r.absent.map((a) => a.path).sort(), ['/home', '/mnt/nfs']);
    // The text form says the same to a person.
    assert.match(cli(['inspect', 'qcow2:vm/guest.qcow2']).stdout, /Test Linux 9\.4[\s\S]*#2 .*ext4, label "boot".*→ \/boot/);
  });

  test('layer get --json names the image format and the filesystem', () => {
    const got = JSON.parse(cli(['layer', 'get', 'guest', '--json']).stdout) as { image?: { imageFormat: string; filesystemType: string; guestTree: boolean } };
    assert.deepEqual(got.image, { imageFormat: 'qcow2', filesystemType: 'ext4', guestTree: true });
  });

  test('an internal snapshot: inspect lists it, qcow2:PATH@NAME shows its guest tree, an unknown name lists what there is', () => {
    const copy = path.join(store, 'vm/guest-snaps.qcow2');
    fs.copyFileSync(path.join(store, 'vm/guest.qcow2'), copy);
    run('qemu-img', ['snapshot', '-c', 'before-upgrade', copy]);
    // The active state moves on after the snapshot: a file in /boot (partition 2) is overwritten with zeros.
    run('qemu-io', ['-f', 'qcow2', '-c', `write -z ${parts[1].start} ${parts[1].size}`, copy]);
    const r = JSON.parse(cli(['inspect', 'qcow2:vm/guest-snaps.qcow2', '--json']).stdout) as { snapshots: { id: string; name: string }[]; mounts: { path: string }[] };
    assert.deepEqual(r.snapshots.map((x) => `${x.id}:${x.name}`), ['1:before-upgrade']);
    // /boot's partition is zeros now: the active state's guest has no /boot filesystem to mount.
    assert.deepEqual(r.mounts.map((m) => m.path), ['/', '/srv/data', '/var/tmp']);
    cli(['layer', 'create', '--source', 'qcow2:vm/guest-snaps.qcow2@before-upgrade', '--name', 'guest-before']);
    assert.equal(cli(['cat', 'guest-before', '/boot/grub2/grub.cfg']).stdout, 'set default=0\n');
    const missing = cli(['layer', 'create', '--source', 'qcow2:vm/guest-snaps.qcow2@nosuch', '--name', 'nosnap'], false);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /before-upgrade/);
  });

  test('#N still reads one partition alone, including what a mount would hide', async () => {
    cli(['layer', 'create', '--source', 'qcow2:vm/guest.qcow2#3', '--name', 'guest-root']);
    const ls = cli(['ls', 'guest-root', '/boot']).stdout;
    assert.match(ls, /hidden-by-mount/);
  });

  test('--path selects a subtree of the composed tree, crossing a mountpoint', async () => {
    cli(['layer', 'create', '--source', 'qcow2:vm/guest.qcow2', '--path', '/boot/grub2', '--name', 'guest-grub']);
    assert.equal(cli(['cat', 'guest-grub', '/grub.cfg']).stdout, 'set default=0\n');
  });
});
