import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeStack, type FixtureEntry, type LayerSpec } from '@strata/harness';
import { Catalog } from '@strata/layers';

/** A layer stack on disk, registered in its own strata store. */
export interface Stack {
  name: string;
  store: string;
  /** Layer directories, top first (the kernel's lowerdir order). */
  layersTopFirst: string[];
  /** The strata layer to mount (the top one). */
  topLayer: string;
  /** The big file for sequential and random reads, relative to the mount, if any. */
  bigFile?: string;
  files: number;
  /** Set for a VM-image stack: the layers are disk images, not folders. */
  disk?: DiskImageStack;
}

const GiB = 2 ** 30;

/**
 * About 30,000 files over three layers in the kernel's spelling: a base of
 * 1000 directories × 22 files (100 B – 16 KiB), a snapshot that rewrites,
 * whites out and adds, a top with opaque directories and new files, and one
 * 1 GiB file of real data in the base.
 */
export function generatedSpecs(): LayerSpec[] {
  const base: FixtureEntry[] = [];
  const snap: FixtureEntry[] = [];
  const top: FixtureEntry[] = [];
  let seed = 1;
  const size = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return 100 + (seed % 16_000);
  };
  for (let d = 0; d < 1000; d++) {
    const dir = `/srv/d${String(d).padStart(4, '0')}`;
    for (let f = 0; f < 22; f++) base.push({ type: 'file', path: `${dir}/f${f}.dat`, content: Buffer.alloc(size(), d + f) });
    if (d % 4 === 0) snap.push({ type: 'whiteout', path: `${dir}/f0.dat` }, { type: 'whiteout', path: `${dir}/f1.dat` });
    if (d % 4 === 1) for (let f = 0; f < 5; f++) snap.push({ type: 'file', path: `${dir}/f${f}.dat`, content: Buffer.alloc(size(), 7) });
    for (let f = 0; f < 3; f++) snap.push({ type: 'file', path: `${dir}/new${f}.dat`, content: Buffer.alloc(size(), 9) });
    if (d % 20 === 0) {
      top.push({ type: 'dir', path: dir, opaque: true });
      for (let f = 0; f < 4; f++) top.push({ type: 'file', path: `${dir}/only${f}.dat`, content: Buffer.alloc(size(), 3) });
    } else if (d % 2 === 0) {
      top.push({ type: 'file', path: `${dir}/top.dat`, content: Buffer.alloc(size(), 5) });
    }
  }
  return [{ entries: base }, { entries: snap }, { entries: top }];
}

/** Registers layer directories store/layers/<n> (bottom first) as a chain; returns the top layer's name. */
export async function register(store: string, names: string[], prefix: string): Promise<string> {
  const catalog = new Catalog(store);
  await catalog.init();
  let base: number | undefined;
  let name = '';
  for (let i = 0; i < names.length; i++) {
    name = `${prefix}${i}`;
    const l = await catalog.create({ source: `dir:layers/${names[i]}`, layerType: i === 0 ? 'base' : 'snapshot', name, ...(base ? { base: { id: base } } : {}) });
    base = l.layerId;
  }
  return name;
}

function countFiles(dirs: string[]): number {
  const r = spawnSync('sh', ['-c', `find ${dirs.map((d) => `'${d}'`).join(' ')} -type f | wc -l`], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

/** Writes a 1 GiB file of non-repeating data (so nothing can shortcut reading it). */
function writeBigFile(file: string): void {
  const fd = fs.openSync(file, 'w');
  const block = Buffer.alloc(1 << 20);
  for (let i = 0; i < GiB / block.length; i++) {
    for (let j = 0; j < block.length; j += 8) block.writeUInt32LE((i * 131_071 + j * 2_654_435_761) >>> 0, j);
    fs.writeSync(fd, block);
  }
  fs.closeSync(fd);
}

export async function generatedStack(root: string): Promise<Stack> {
  const dir = path.join(root, 'generated');
  const store = path.join(dir, 'store');
  const layers = path.join(store, 'layers');
  const done = path.join(dir, '.complete');
  if (!fs.existsSync(done)) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(layers, { recursive: true });
    writeStack(layers, generatedSpecs(), 'trusted');
    writeBigFile(path.join(layers, '0/big.img'));
    await register(store, ['0', '1', '2'], 'gen');
    fs.writeFileSync(done, '');
  }
  const layersTopFirst = ['2', '1', '0'].map((n) => path.join(layers, n));
  return { name: 'generated', store, layersTopFirst, topLayer: 'gen2', bigFile: 'big.img', files: countFiles(layersTopFirst) };
}

const MIRROR = 'http://deb.debian.org/debian';
const PACKAGES = ['curl', 'less', 'procps', 'iproute2', 'python3-minimal'];

function run(cmd: string, args: string[], log: (s: string) => void): void {
  log(`$ ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * A Debian root filesystem (debootstrap, minbase) as the base image, and as
 * a snapshot what installing a few packages changed in it: apt runs in a
 * chroot over an overlayfs mount, whose upper directory is the layer.
 */
export async function debianStack(root: string, log: (s: string) => void): Promise<Stack> {
  const dir = path.join(root, 'debian');
  const store = path.join(dir, 'store');
  const layers = path.join(store, 'layers');
  const base = path.join(layers, 'rootfs');
  const upper = path.join(layers, 'packages');
  const done = path.join(dir, '.complete');
  if (!fs.existsSync(done)) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(layers, { recursive: true });
    run('debootstrap', ['--variant=minbase', 'bookworm', base, MIRROR], log);
    const work = path.join(dir, 'work');
    const merged = path.join(dir, 'merged');
    fs.mkdirSync(upper);
    fs.mkdirSync(work);
    fs.mkdirSync(merged);
    run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base},upperdir=${upper},workdir=${work}`, merged], log);
    try {
      run('mount', ['-t', 'proc', 'proc', path.join(merged, 'proc')], log);
      run('mount', ['--bind', '/dev', path.join(merged, 'dev')], log);
      run('mount', ['-t', 'devpts', 'devpts', path.join(merged, 'dev/pts')], log);
      fs.copyFileSync('/etc/resolv.conf', path.join(merged, 'etc/resolv.conf'));
      try {
        run('chroot', [merged, 'apt-get', 'update', '-qq'], log);
        run('chroot', [merged, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...PACKAGES], log);
        run('chroot', [merged, 'apt-get', 'clean'], log);
      } finally {
        spawnSync('umount', [path.join(merged, 'dev/pts')]);
        spawnSync('umount', [path.join(merged, 'dev')]);
        spawnSync('umount', [path.join(merged, 'proc')]);
      }
    } finally {
      spawnSync('umount', [merged]);
    }
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(merged, { recursive: true, force: true });
    await register(store, ['rootfs', 'packages'], 'deb');
    fs.writeFileSync(done, '');
  }
  const layersTopFirst = [upper, base];
  return { name: 'debian', store, layersTopFirst, topLayer: 'deb1', files: countFiles(layersTopFirst) };
}

/** The filesystems a VM-image stack's guest can have in partition 2. */
export type GuestFilesystem = 'ext4' | 'xfs';

/** Where the filesystem of a VM-image stack is, for the systems that read the disk itself. */
export interface DiskImageStack {
  /** The top image (its backing file beside it), as a hypervisor keeps it. */
  topImage: string;
  /** qemu's driver for the top image (its backing file's format is named in its header). */
  topFormat: 'qcow2' | 'vmdk';
  /** The same disk flattened to raw, for the kernel's loop mount. */
  flatDisk: string;
  /** Byte window of the root partition (#2). */
  partition: { start: number; size: number };
  filesystem: GuestFilesystem;
}

const VM_DISK_GIB = 4;

function rootPartition(disk: string): { start: number; size: number } {
  const t = JSON.parse(execFileSync('sfdisk', ['-J', disk], { encoding: 'utf8' })) as { partitiontable: { partitions: { start: number; size: number }[] } };
  const p = t.partitiontable.partitions[1];
  return { start: p.start * 512, size: p.size * 512 };
}

function withDiskMount(disk: string, part: { start: number; size: number }, mnt: string, log: (s: string) => void, fn: () => void): void {
  const dev = execFileSync('losetup', ['-o', String(part.start), '--sizelimit', String(part.size), '-f', '--show', disk], { encoding: 'utf8' }).trim();
  try {
    run('mount', [dev, mnt], log);
    try {
      fn();
    } finally {
      spawnSync('umount', [mnt]);
    }
  } finally {
    spawnSync('losetup', ['-d', dev]);
  }
}

const MKFS: Record<GuestFilesystem, (dev: string) => [string, string[]]> = {
  ext4: (dev) => ['mke2fs', ['-q', '-t', 'ext4', dev]],
  xfs: (dev) => ['mkfs.xfs', ['-q', dev]],
};

/**
 * What a VM-image stack's build marker says: a stack built by an older
 * recipe (its snapshot written by `qemu-img convert -B`, which copies every
 * cluster the disk has) is built again.
 */
const VM_STACK_RECIPE = 'snapshot holds the changed clusters\n';

const builtBy = (done: string, recipe: string): boolean => fs.existsSync(done) && fs.readFileSync(done, 'utf8') === recipe;

function qemuImg(args: string[], cwd: string, log: (s: string) => void): void {
  log(`$ (cd ${cwd}) qemu-img ${args.join(' ')}`);
  execFileSync('qemu-img', args, { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * Writes `top` in `dir` (qcow2, or a VMDK delta disk) over the image `base`
 * holding the disk `flat` as a hypervisor's snapshot holds it: only the
 * clusters where `flat` differs from `base`. (`qemu-img convert -B` would
 * copy every cluster `flat` has, so reads would never reach the base.)
 * `qemu-img rebase` of an overlay of `flat` onto `base` keeps what differs;
 * a VMDK cannot be rebased, so for it that overlay is rebased onto an empty
 * delta disk and committed into it.
 */
function snapshotOver(dir: string, flat: string, base: string, baseFormat: string, top: string, topFormat: 'qcow2' | 'vmdk', log: (s: string) => void): void {
  const changes = topFormat === 'qcow2' ? top : 'changes.qcow2';
  if (topFormat === 'vmdk') qemuImg(['create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicSparse', '-b', base, '-F', baseFormat, top], dir, log);
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', flat, '-F', 'raw', changes], dir, log);
  qemuImg(['rebase', '-f', 'qcow2', '-b', topFormat === 'qcow2' ? base : top, '-F', topFormat === 'qcow2' ? baseFormat : 'vmdk', changes], dir, log);
  if (topFormat === 'vmdk') {
    qemuImg(['commit', '-q', '-f', 'qcow2', changes], dir, log);
    fs.rmSync(path.join(dir, changes));
  }
}

/** Registers disk-image sources (bottom first) as the chain vm0, vm1, … */
async function registerImages(store: string, sources: string[]): Promise<void> {
  const catalog = new Catalog(store);
  await catalog.init();
  let base: number | undefined;
  for (let i = 0; i < sources.length; i++) {
    const l = await catalog.create({ source: sources[i], layerType: i === 0 ? 'base' : 'snapshot', name: `vm${i}`, ...(base ? { base: { id: base } } : {}) });
    base = l.layerId;
  }
}

/**
 * The Debian stack as a VM disk: a GPT disk with `filesystem` in partition 2
 * holding the Debian root filesystem and a 1 GiB file, as a qcow2 base image,
 * and as a qcow2 snapshot what installing the packages changed (the disk
 * written by `qemu-img convert -B`). Filled through a read-write loop mount,
 * as a guest would. Named `vm-image` for ext4, `vm-image-<fs>` otherwise.
 */
export async function vmImageStack(root: string, debian: Stack, log: (s: string) => void, filesystem: GuestFilesystem = 'ext4'): Promise<Stack> {
  const name = filesystem === 'ext4' ? 'vm-image' : `vm-image-${filesystem}`;
  const dir = path.join(root, name);
  const store = path.join(dir, 'store');
  const vm = path.join(store, 'vm');
  const disk = path.join(dir, 'disk.raw');
  const done = path.join(dir, '.complete');
  const [upper, base] = debian.layersTopFirst;
  if (!builtBy(done, VM_STACK_RECIPE)) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(vm, { recursive: true });
    fs.writeFileSync(disk, '');
    fs.truncateSync(disk, VM_DISK_GIB * GiB);
    execFileSync('sfdisk', ['-q', disk], { input: 'label: gpt\nsize=1MiB, type=21686148-6449-6E6F-744E-656564454649\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' });
    const part = rootPartition(disk);
    const dev = execFileSync('losetup', ['-o', String(part.start), '--sizelimit', String(part.size), '-f', '--show', disk], { encoding: 'utf8' }).trim();
    try {
      run(...MKFS[filesystem](dev), log);
    } finally {
      spawnSync('losetup', ['-d', dev]);
    }
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    withDiskMount(disk, part, mnt, log, () => {
      run('rsync', ['-aHAX', `${base}/`, `${mnt}/`], log);
      writeBigFile(path.join(mnt, 'big.img'));
    });
    run('qemu-img', ['convert', '-O', 'qcow2', disk, path.join(vm, 'base.qcow2')], log);
    // The snapshot: the guest installed the packages. Its tree is the kernel's merge of the Debian stack.
    const merged = path.join(dir, 'merged');
    fs.mkdirSync(merged);
    run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${upper}:${base}`, merged], log);
    try {
      withDiskMount(disk, part, mnt, log, () => run('rsync', ['-aHAX', '--delete', '--exclude', '/big.img', `${merged}/`, `${mnt}/`], log));
    } finally {
      spawnSync('umount', [merged]);
    }
    fs.rmdirSync(merged);
    fs.rmdirSync(mnt);
    snapshotOver(vm, disk, 'base.qcow2', 'qcow2', 'snapshot.qcow2', 'qcow2', log);
    await registerImages(store, ['qcow2:vm/base.qcow2#2', 'qcow2:vm/snapshot.qcow2#2']);
    fs.writeFileSync(done, VM_STACK_RECIPE);
  }
  return {
    name,
    store,
    layersTopFirst: [],
    topLayer: 'vm1',
    bigFile: 'big.img',
    files: debian.files + 1,
    disk: { topImage: path.join(vm, 'snapshot.qcow2'), topFormat: 'qcow2', flatDisk: disk, partition: rootPartition(disk), filesystem },
  };
}

/** How a hypervisor other than QEMU holds the same base and snapshot. */
export type ForeignFormat = 'vmdk' | 'vhdx';

/**
 * The `vm-image` disk (ext4) as another hypervisor holds it, from the same
 * base and snapshot states: VMware's monolithicSparse base with a VMDK delta
 * disk over it, or Hyper-V's dynamic VHDX base with a qcow2 snapshot over it
 * (qemu cannot write VHDX differencing disks), each snapshot holding only
 * the clusters that differ from the base. The kernel reads the same
 * flattened disk as for `vm-image`.
 */
export async function foreignImageStack(root: string, vmImage: Stack, format: ForeignFormat, log: (s: string) => void): Promise<Stack> {
  const original = vmImage.disk;
  if (!original || original.filesystem !== 'ext4') throw new Error(`${vmImage.name} is not the ext4 VM-image stack`);
  const name = `vm-image-${format}`;
  const dir = path.join(root, name);
  const store = path.join(dir, 'store');
  const vm = path.join(store, 'vm');
  const done = path.join(dir, '.complete');
  const baseQcow2 = path.join(vmImage.store, 'vm/base.qcow2');
  const topFormat = format === 'vmdk' ? 'vmdk' : 'qcow2';
  const top = `snapshot.${topFormat}`;
  // Built again whenever vm-image is: the kernel reads vm-image's flattened disk.
  const recipe = `${VM_STACK_RECIPE}from vm-image built at ${fs.statSync(path.join(root, 'vm-image', '.complete')).mtimeMs}\n`;
  if (!builtBy(done, recipe)) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(vm, { recursive: true });
    const subformat = format === 'vmdk' ? 'monolithicSparse' : 'dynamic';
    run('qemu-img', ['convert', '-O', format, '-o', `subformat=${subformat}`, baseQcow2, path.join(vm, `base.${format}`)], log);
    // The snapshot state is the flattened disk the kernel reads.
    snapshotOver(vm, original.flatDisk, `base.${format}`, format, top, topFormat, log);
    await registerImages(store, [`${format}:vm/base.${format}#2`, `${topFormat}:vm/${top}#2`]);
    fs.writeFileSync(done, recipe);
  }
  return {
    name,
    store,
    layersTopFirst: [],
    topLayer: 'vm1',
    bigFile: 'big.img',
    files: vmImage.files,
    disk: { ...original, topImage: path.join(vm, top), topFormat },
  };
}
