import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { startResolver, type ResolverProcess } from '@strata/harness';
import { apiTreeSource } from '../support/api-tree-source';
import { cliOf } from '../support/cli-runner';
import { referenceDiff } from '../support/reference-diff';
import { ALL_FIELDS, compareTrees, readEngineTree, readKernelTree, type Tree } from '../support/tree-snapshot';
import { canLoopMount, partitionDisk, run, withLoop, withLoopMount, type PartitionWindow } from './disk-fixture';
import { execFileSync } from 'node:child_process';

/**
 * A RHEL-style guest disk: an EFI system partition (FAT), /boot (ext4) and
 * an LVM2 physical volume holding the root (XFS) and /home (ext4) logical
 * volumes, its fstab naming them by UUID and by mapper and VG/LV names. The
 * guest tree strata shows is compared with the kernel's mounts of the same
 * volumes (logical volumes loop-mounted at their extents' offsets, as there
 * is no device-mapper here) composed by hand; the ESP, which this kernel
 * cannot mount, with what mtools reads.
 */

const MIB = 1024 * 1024;
const tools = ['sfdisk', 'losetup', 'pvcreate', 'vgcreate', 'lvcreate', 'lvs', 'pvs', 'mkfs.xfs', 'mkfs.fat', 'mcopy', 'mkfs.ext4', 'qemu-img'];
const canRun = canLoopMount(...tools);
/** mkfs.xfs formats filesystems under 300 MB only for fstests, which it recognises by these variables. */
const SMALL_XFS = { ...process.env, TEST_DIR: '1', TEST_DEV: '1', QA_CHECK_FS: '1' };

let work: string;
let store: string;
let raw: string;
let parts: PartitionWindow[];
const lvs = new Map<string, PartitionWindow>();
let espSerial: string;
let resolver: ResolverProcess;
let client: StrataClient;

const cli = cliOf(() => resolver);

function onLoop<T>(w: PartitionWindow, fn: (dev: string) => T): T {
  return withLoop(raw, w, fn);
}

/** Creates VG "rhel" with LVs root and home on partition 3, without activating anything; returns where each LV's extents lie on the disk. */
function makeVolumeGroup(pv: PartitionWindow): void {
  onLoop(pv, (dev) => {
    const config = `global{activation=0} devices{filter=["a|^${dev}$|","r|.*|"] use_devicesfile=0 obtain_device_list_from_udev=0 scan_lvs=0} backup{backup=0 archive=0}`;
    const env = { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' };
    const lvm = (cmd: string, ...args: string[]): string => execFileSync(cmd, ['--config', config, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    lvm('pvcreate', '-ff', '-y', dev);
    lvm('vgcreate', '-s', '4m', 'rhel', dev);
    lvm('lvcreate', '-an', '--zero', 'n', '-L', '320m', '-n', 'root', 'rhel');
    lvm('lvcreate', '-an', '--zero', 'n', '-L', '64m', '-n', 'home', 'rhel');
    const peStart = Number(JSON.parse(lvm('pvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'pe_start')).report[0].pv[0].pe_start);
    const segs = JSON.parse(lvm('lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '--segments', '-o', 'lv_name,lv_size,seg_pe_ranges')).report[0].seg as { lv_name: string; lv_size: string; seg_pe_ranges: string }[];
    for (const s of segs) {
      const first = Number(/:(\d+)-/.exec(s.seg_pe_ranges)?.[1]);
      lvs.set(s.lv_name, { start: pv.start + peStart + first * 4 * MIB, size: Number(s.lv_size) });
    }
  });
}

before(async () => {
  if (!canRun) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-guest-lvm-'));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  raw = path.join(work, 'rhel.raw');
  parts = partitionDisk(raw, 600, 'label: gpt\nsize=40MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System Partition"\nsize=100MiB, type=BC13C2FF-59E6-4262-A352-B275FD6F7172\ntype=E6D6D379-F507-44C2-A23C-238F2A3DF928\n');
  makeVolumeGroup(parts[2]);
  const root = lvs.get('root');
  const home = lvs.get('home');
  assert.ok(root && home);

  // The ESP: FAT16 with a serial fstab names it by, filled by mtools.
  espSerial = 'A1B2-C3D4';
  onLoop(parts[0], (dev) => run('mkfs.fat', ['-F', '16', '-n', 'ESP', '-i', espSerial.replace('-', ''), dev]));
  const efiSrc = path.join(work, 'efi');
  fs.mkdirSync(path.join(efiSrc, 'EFI/BOOT'), { recursive: true });
  fs.mkdirSync(path.join(efiSrc, 'EFI/redhat'), { recursive: true });
  fs.writeFileSync(path.join(efiSrc, 'EFI/BOOT/BOOTX64.EFI'), Buffer.alloc(70_000, 0x4d));
  fs.writeFileSync(path.join(efiSrc, 'EFI/redhat/grub.cfg'), 'search --fs-uuid\n');
  onLoop(parts[0], (dev) => run('mcopy', ['-s', '-i', dev, path.join(efiSrc, 'EFI'), '::/']));

  const bootUuid = onLoop(parts[1], (dev) => {
    run('mkfs.ext4', ['-q', '-F', '-L', 'boot', dev]);
    return run('blkid', ['-s', 'UUID', '-o', 'value', dev]).trim();
  });
  onLoop(root, (dev) => execFileSync('mkfs.xfs', ['-q', '-f', '-L', 'root', dev], { env: SMALL_XFS, stdio: 'ignore' }));
  onLoop(home, (dev) => run('mkfs.ext4', ['-q', '-F', dev]));

  await withLoopMount(raw, root, 'rw', (m) => {
    fs.mkdirSync(path.join(m, 'etc'));
    fs.writeFileSync(path.join(m, 'etc/os-release'), 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="9.4"\nPRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n');
    fs.writeFileSync(path.join(m, 'etc/hostname'), 'rhel-guest\n');
    fs.writeFileSync(
      path.join(m, 'etc/fstab'),
      [
        '/dev/mapper/rhel-root   /          xfs   defaults        0 0',
        `UUID=${bootUuid} /boot ext4 defaults 1 2`,
        `UUID=${espSerial} /boot/efi vfat umask=0077,shortname=winnt 0 2`,
        '/dev/rhel/home          /home      ext4  defaults        0 0',
        '/dev/mapper/rhel-swap   none       swap  defaults        0 0',
      ].join('\n') + '\n',
    );
    for (const d of ['boot', 'home', 'usr/bin', 'var/log']) fs.mkdirSync(path.join(m, d), { recursive: true });
    for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(m, 'usr/bin', `tool-${i}`), `#!/bin/sh\necho ${i}\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(m, 'var/log/messages'), Buffer.alloc(1_500_000, 0x6c));
  });
  await withLoopMount(raw, parts[1], 'rw', (m) => {
    fs.mkdirSync(path.join(m, 'efi'));
    fs.writeFileSync(path.join(m, 'vmlinuz-5.14.0'), Buffer.alloc(200_000, 3));
    fs.mkdirSync(path.join(m, 'loader/entries'), { recursive: true });
    fs.writeFileSync(path.join(m, 'loader/entries/rhel.conf'), 'title Red Hat\n');
  });
  await withLoopMount(raw, home, 'rw', (m) => {
    fs.mkdirSync(path.join(m, 'alice'));
    fs.writeFileSync(path.join(m, 'alice/notes.txt'), 'hello from home\n');
    fs.chownSync(path.join(m, 'alice'), 1000, 1000);
  });
  run('qemu-img', ['convert', '-O', 'qcow2', raw, path.join(store, 'vm/rhel.qcow2')]);
  resolver = await startResolver({ store });
  client = new StrataClient({ resolver: resolver.address });
});

after(async () => {
  client?.close();
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** The kernel's mounts composed at the fstab's places (the ESP left out: this kernel has no vfat). */
async function kernelTree(): Promise<Tree> {
  const root = lvs.get('root');
  const home = lvs.get('home');
  assert.ok(root && home);
  return withLoopMount(raw, root, 'ro', (m) =>
    withLoopMount(raw, parts[1], 'ro', (boot) =>
      withLoopMount(raw, home, 'ro', (h) => {
        run('mount', ['--bind', boot, path.join(m, 'boot')]);
        try {
          run('mount', ['--bind', h, path.join(m, 'home')]);
          try {
            return readKernelTree(m);
          } finally {
            run('umount', [path.join(m, 'home')]);
          }
        } finally {
          run('umount', [path.join(m, 'boot')]);
        }
      }),
    ),
  );
}

function without(tree: Tree, prefix: string): Tree {
  return new Map([...tree].filter(([p]) => p !== prefix && !p.startsWith(`${prefix}/`)));
}

describe('a RHEL-style guest on LVM: ESP, /boot, root and /home logical volumes', { skip: canRun ? false : 'needs root, loop devices, lvm2, xfsprogs, dosfstools, mtools' }, () => {
  test('the guest tree matches the kernel mounts composed at the same places, field by field', async () => {
    cli(['layer', 'create', '--source', 'qcow2:vm/rhel.qcow2', '--name', 'rhel']);
    const expected = await kernelTree();
    const actual = await readEngineTree(apiTreeSource(client, { name: 'rhel' }));
    assert.ok(expected.has('/home/alice/notes.txt') && expected.has('/boot/loader/entries/rhel.conf') && expected.size > 200);
    assert.deepEqual(compareTrees(without(expected, '/boot/efi'), without(actual, '/boot/efi'), ALL_FIELDS), []);
    // The ESP at /boot/efi, as mtools reads it.
    assert.equal(actual.get('/boot/efi/EFI/BOOT/BOOTX64.EFI')?.size, 70_000);
    assert.equal(cli(['cat', 'rhel', '/boot/efi/EFI/redhat/grub.cfg']).stdout, 'search --fs-uuid\n');
    const listing = cli(['ls', 'rhel', '/boot/efi/EFI']).stdout;
    assert.match(listing, /BOOT/);
    assert.match(listing, /redhat/);
  });

  test('#VG/LV reads one logical volume; the PV partition is refused naming the VG and an LV to ask for', () => {
    cli(['layer', 'create', '--source', 'qcow2:vm/rhel.qcow2#rhel/home', '--name', 'rhel-home']);
    assert.equal(cli(['cat', 'rhel-home', '/alice/notes.txt']).stdout, 'hello from home\n');
    const refused = cli(['layer', 'create', '--source', 'qcow2:vm/rhel.qcow2#3', '--name', 'pv'], false);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /partition #3 of vm\/rhel\.qcow2 holds an LVM2 physical volume \(VG rhel\): name a logical volume, e\.g\. #rhel\/root/);
    const swapless = cli(['layer', 'create', '--source', 'qcow2:vm/rhel.qcow2#rhel/nosuch', '--name', 'nolv'], false);
    assert.match(swapless.stderr, /no logical volume #rhel\/nosuch/);
  });

  test('strata diff between two snapshots of the XFS root LV in a qcow2 chain equals the kernel mounts\' changes', async () => {
    const root = lvs.get('root');
    assert.ok(root);
    // The guest changes its root filesystem; the hypervisor's snapshot holds only what changed.
    await withLoopMount(raw, root, 'rw', (m) => {
      fs.writeFileSync(path.join(m, 'etc/hostname'), 'renamed\n');
      fs.rmSync(path.join(m, 'var/log/messages'));
      for (let i = 0; i < 200; i += 3) fs.unlinkSync(path.join(m, 'usr/bin', `tool-${i}`));
      fs.mkdirSync(path.join(m, 'srv/www'), { recursive: true });
      fs.writeFileSync(path.join(m, 'srv/www/index.html'), '<p>new</p>\n');
      fs.chmodSync(path.join(m, 'usr/bin/tool-1'), 0o700);
    });
    run('qemu-img', ['convert', '-O', 'qcow2', '-B', 'rhel.qcow2', '-F', 'qcow2', raw, 'rhel-snap.qcow2'], path.join(store, 'vm'));
    cli(['layer', 'create', '--source', 'qcow2:vm/rhel.qcow2#rhel/root', '--name', 'root-base']);
    cli(['layer', 'create', '--source', 'qcow2:vm/rhel-snap.qcow2#rhel/root', '--base', 'root-base', '--name', 'root-snap']);
    const flats = ['rhel.qcow2', 'rhel-snap.qcow2'].map((n) => path.join(work, `${n}.flat`));
    run('qemu-img', ['convert', '-O', 'raw', path.join(store, 'vm/rhel.qcow2'), flats[0]]);
    run('qemu-img', ['convert', '-O', 'raw', path.join(store, 'vm/rhel-snap.qcow2'), flats[1]]);
    // Two copies of one XFS filesystem share its UUID, which XFS mounts only with nouuid.
    const expected = await withLoopMount(flats[0], root, 'ro', (a) => withLoopMount(flats[1], root, 'ro', (b) => referenceDiff(a, b), 'nouuid'), 'nouuid');
    for (const f of flats) fs.rmSync(f);
    const out = JSON.parse(cli(['diff', 'root-base', 'root-snap', '--json']).stdout) as { changes: { path: string; pathBase64?: string; kind: string }[] };
    const bytesOf = (c: { path: string; pathBase64?: string }): Buffer => (c.pathBase64 ? Buffer.from(c.pathBase64, 'base64') : Buffer.from(c.path, 'utf8'));
    const actual = out.changes.map((c) => `${c.kind} ${JSON.stringify(bytesOf(c).toString('latin1'))}`);
    assert.ok(expected.length > 60, `diff has ${expected.length} changes`);
    assert.deepEqual(actual, expected);
  });

  test('strata inspect: OS, every volume with type, label and UUID, and where the guest mounts it', () => {
    const r = JSON.parse(cli(['inspect', 'qcow2:vm/rhel.qcow2', '--json']).stdout) as {
      os: { distribution: string; version: string; hostname: string };
      volumes: { volume: string; filesystemType: string; label: string; uuid: string; mountpoint: string }[];
      mounts: { path: string; volume: string; filesystemType: string }[];
    };
    assert.equal(r.os.distribution, 'rhel');
    assert.equal(r.os.version, '9.4');
    assert.equal(r.os.hostname, 'rhel-guest');
    assert.deepEqual(r.mounts.map((m) => `${m.path}=#${m.volume}:${m.filesystemType}`), ['/=#rhel/root:xfs', '/boot=#2:ext4', '/home=#rhel/home:ext4', '/boot/efi=#1:vfat']);
    const esp = r.volumes.find((v) => v.volume === '1');
    assert.equal(esp?.uuid, espSerial);
    assert.equal(esp?.label, 'ESP');
    assert.equal(r.volumes.find((v) => v.volume === 'rhel/root')?.label, 'root');
  });
});
