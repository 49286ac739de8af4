import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Cleanup } from './cleanup';
import { generateTree, planChange, type ChangeOp, type ExpectedChange, type Tree } from './tree';

/** Byte window of a partition on its disk. */
export interface PartitionWindow {
  start: number;
  size: number;
}

/** The two disks of one size, in the store's vm/ folder, and what was done to them. */
export interface DiskPair {
  /** Non-directory entries of the base tree. */
  files: number;
  dirs: number;
  diskBytes: number;
  partition: PartitionWindow;
  /** Paths relative to the store root. */
  baseQcow2: string;
  snapQcow2: string;
  baseRaw: string;
  snapRaw: string;
  expected: ExpectedChange[];
  /** Guest bytes the snapshot's qcow2 file answers itself (not from its backing file), and the file's size. */
  snapAllocatedBytes: number;
  snapFileBytes: number;
  baseFileBytes: number;
}

/** Bump when the generator or the change changes, so disks kept in STRATA_BENCH_DIR are made again. */
const DISKS_VERSION = 2;

/** Runs a tool; a failure throws with its stderr. */
export function run(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

/** A sparse GPT disk: a 1 MiB BIOS boot partition (#1) and a Linux filesystem partition (#2) taking the rest. */
function makeGptDisk(file: string, bytes: number): PartitionWindow {
  fs.closeSync(fs.openSync(file, 'w'));
  fs.truncateSync(file, bytes);
  execFileSync('sfdisk', ['-q', file], { input: 'label: gpt\nsize=1MiB, type=21686148-6449-6E6F-744E-656564454649\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' });
  const table = JSON.parse(run('sfdisk', ['-J', file])) as { partitiontable: { partitions: { start: number; size: number }[] } };
  const p = table.partitiontable.partitions[1];
  return { start: p.start * 512, size: p.size * 512 };
}

function attach(disk: string, w: PartitionWindow, readOnly: boolean): string {
  return run('losetup', [...(readOnly ? ['-r'] : []), '-o', String(w.start), '--sizelimit', String(w.size), '-f', '--show', disk]).trim();
}

/** Formats partition #2 the way an installer would: mke2fs -t ext4 with its defaults, on a loop device. */
async function mkfs(disk: string, w: PartitionWindow, cleanup: Cleanup): Promise<void> {
  const dev = attach(disk, w, false);
  const detach = cleanup.add(`losetup -d ${dev}`, () => void run('losetup', ['-d', dev]));
  try {
    run('mke2fs', ['-q', '-F', '-t', 'ext4', dev]);
  } finally {
    await detach();
  }
}

/**
 * The kernel's mount of a partition through a loop device (read-write: a
 * guest writing its disk; read-only: the reference reader); resolves with
 * the function that unmounts and detaches, also registered with `cleanup`.
 */
export async function loopMount(disk: string, w: PartitionWindow, mode: 'rw' | 'ro', mnt: string, cleanup: Cleanup): Promise<() => Promise<void>> {
  fs.mkdirSync(mnt, { recursive: true });
  const dev = attach(disk, w, mode === 'ro');
  const detach = cleanup.add(`losetup -d ${dev}`, () => void run('losetup', ['-d', dev]));
  try {
    run('mount', ['-o', mode, dev, mnt]);
  } catch (err) {
    await detach();
    throw err;
  }
  const unmount = cleanup.add(`umount ${mnt}`, () => {
    try {
      run('umount', [mnt]);
    } catch {
      // Still busy (an interrupted walk): detach it; the loop device goes once the last user does.
      run('umount', ['-l', mnt]);
    }
  });
  return async () => {
    await unmount();
    await detach();
  };
}

function writeTree(mnt: string, tree: Tree): void {
  for (const e of tree.entries) {
    const p = mnt + e.path;
    if (e.type === 'dir') fs.mkdirSync(p);
    else if (e.type === 'file') fs.writeFileSync(p, Buffer.alloc(e.size, e.fill));
    else if (e.type === 'symlink') fs.symlinkSync(e.target, p);
    else fs.linkSync(mnt + e.target, p);
  }
}

function applyChange(mnt: string, ops: ChangeOp[]): void {
  for (const o of ops) {
    if (o.op === 'rewrite') fs.writeFileSync(mnt + o.path, Buffer.alloc(o.size, o.fill)); // O_TRUNC: the same inode
    else if (o.op === 'append') fs.appendFileSync(mnt + o.path, Buffer.alloc(o.size, o.fill));
    else if (o.op === 'create') fs.writeFileSync(mnt + o.path, Buffer.alloc(o.size, o.fill), { flag: 'wx' });
    else if (o.op === 'mkdir') fs.mkdirSync(mnt + o.path);
    else if (o.op === 'unlink') fs.unlinkSync(mnt + o.path);
    else fs.renameSync(mnt + o.from, mnt + o.to);
  }
}

/** Guest bytes a qcow2 file holds itself (data or zero clusters at depth 0), from qemu-img map. */
function ownBytes(image: string): number {
  const map = JSON.parse(run('qemu-img', ['map', '--output=json', image])) as { length: number; depth: number; present: boolean }[];
  return map.reduce((n, e) => (e.depth === 0 && e.present ? n + e.length : n), 0);
}

interface Range {
  start: number;
  length: number;
}

/** Where a sparse raw disk has data (qemu-img asks the filesystem, SEEK_DATA); the rest reads as zeros. */
function dataExtents(raw: string): Range[] {
  const map = JSON.parse(run('qemu-img', ['map', '--output=json', '-f', 'raw', raw])) as { start: number; length: number; data: boolean }[];
  return map.filter((e) => e.data).map((e) => ({ start: e.start, length: e.length }));
}

/** Sorted, cluster-aligned, merged. */
function alignedUnion(ranges: Range[], cluster: number): Range[] {
  const out: Range[] = [];
  for (const r of [...ranges].sort((x, y) => x.start - y.start)) {
    const start = Math.floor(r.start / cluster) * cluster;
    const end = Math.ceil((r.start + r.length) / cluster) * cluster;
    const last = out.at(-1);
    if (last && start <= last.start + last.length) last.length = Math.max(last.length, end - last.start);
    else out.push({ start, length: end - start });
  }
  return out;
}

/** The runs of `cluster`-sized clusters whose bytes differ between two raw disks of one size. */
function differingClusters(a: string, b: string, cluster: number): Range[] {
  const CHUNK = 64 * cluster;
  const bufA = Buffer.alloc(CHUNK);
  const bufB = Buffer.alloc(CHUNK);
  const out: Range[] = [];
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    for (const r of alignedUnion([...dataExtents(a), ...dataExtents(b)], cluster)) {
      for (let pos = r.start; pos < r.start + r.length; pos += CHUNK) {
        const want = Math.min(CHUNK, r.start + r.length - pos);
        const na = fs.readSync(fa, bufA, 0, want, pos);
        const nb = fs.readSync(fb, bufB, 0, want, pos);
        if (na !== want || nb !== want) throw new Error(`short read of ${a} or ${b} at ${pos}`);
        for (let off = 0; off < want; off += cluster) {
          if (bufA.subarray(off, off + cluster).equals(bufB.subarray(off, off + cluster))) continue;
          const last = out.at(-1);
          if (last && last.start + last.length === pos + off) last.length += cluster;
          else out.push({ start: pos + off, length: cluster });
        }
      }
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
  return out;
}

/**
 * A qcow2 snapshot over `baseQcow2` holding exactly the clusters in which
 * `snapRaw` differs from `baseRaw`, as a hypervisor's overlay holds the
 * clusters its guest wrote. (`qemu-img convert -B` does not make that: it
 * compares nothing with the backing file and writes every cluster of a raw
 * source, holes as zero clusters, so the snapshot would own the whole disk.)
 * The clusters go in with qemu-io; qemu-img compare then checks that the
 * snapshot reads exactly as the raw disk.
 */
function snapshotOf(vm: string, baseQcow2: string, baseRaw: string, snapRaw: string, snapQcow2: string): void {
  const info = JSON.parse(run('qemu-img', ['info', '--output=json', baseQcow2], vm)) as { 'cluster-size': number };
  const cluster = info['cluster-size'];
  const runs = differingClusters(path.join(vm, baseRaw), path.join(vm, snapRaw), cluster);
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', baseQcow2, '-F', 'qcow2', snapQcow2], vm);
  const parts = fs.mkdtempSync(path.join(vm, '.clusters-'));
  try {
    const fd = fs.openSync(path.join(vm, snapRaw), 'r');
    const commands: string[] = [];
    try {
      runs.forEach((r, i) => {
        const buf = Buffer.alloc(r.length);
        fs.readSync(fd, buf, 0, r.length, r.start);
        const file = path.join(parts, String(i));
        fs.writeFileSync(file, buf);
        commands.push('-c', `write -q -s ${file} ${r.start} ${r.length}`);
      });
    } finally {
      fs.closeSync(fd);
    }
    // A bounded command line per qemu-io call.
    for (let i = 0; i < commands.length; i += 400) run('qemu-io', ['-f', 'qcow2', snapQcow2, ...commands.slice(i, i + 400)], vm);
  } finally {
    fs.rmSync(parts, { recursive: true, force: true });
  }
  run('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'raw', snapQcow2, snapRaw], vm);
}

/**
 * The base disk of `files` files and its snapshot after the change, in
 * `store`/vm: base-N.raw and snap-N.raw (the disks), base-N.qcow2 and
 * snap-N.qcow2 (the snapshot holding only the clusters that differ, as a
 * hypervisor's overlay would hold them).
 * Kept when `keep` and made by this version before.
 */
export async function diskPair(store: string, files: number, diskBytes: number, keep: boolean, cleanup: Cleanup, log: (s: string) => void): Promise<DiskPair> {
  const vm = path.join(store, 'vm');
  const manifest = path.join(vm, `disks-${files}.json`);
  if (keep && fs.existsSync(manifest)) {
    const kept = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version: number; pair: DiskPair };
    if (kept.version === DISKS_VERSION) {
      log(`${files} files: disks kept from an earlier run (${manifest})`);
      return kept.pair;
    }
  }
  fs.mkdirSync(vm, { recursive: true });
  const names = { baseRaw: `vm/base-${files}.raw`, snapRaw: `vm/snap-${files}.raw`, baseQcow2: `vm/base-${files}.qcow2`, snapQcow2: `vm/snap-${files}.qcow2` };
  const abs = (rel: string): string => path.join(store, rel);
  for (const rel of Object.values(names)) fs.rmSync(abs(rel), { force: true });
  const tree = generateTree(files);
  const change = planChange(tree);
  log(`${files} files: ${tree.dirs} directories, ${(tree.dataBytes / 2 ** 20).toFixed(0)} MiB of file data on a ${diskBytes / 2 ** 30} GiB disk`);
  const partition = makeGptDisk(abs(names.baseRaw), diskBytes);
  await mkfs(abs(names.baseRaw), partition, cleanup);
  const mnt = path.join(store, `.mnt-${files}`);
  let release = await loopMount(abs(names.baseRaw), partition, 'rw', mnt, cleanup);
  try {
    writeTree(mnt, tree);
  } finally {
    await release();
  }
  run('qemu-img', ['convert', '-O', 'qcow2', names.baseRaw, names.baseQcow2], store);
  run('cp', ['--sparse=always', names.baseRaw, names.snapRaw], store);
  release = await loopMount(abs(names.snapRaw), partition, 'rw', mnt, cleanup);
  try {
    applyChange(mnt, change.ops);
  } finally {
    await release();
    fs.rmdirSync(mnt);
  }
  const base = (rel: string): string => path.basename(rel);
  snapshotOf(vm, base(names.baseQcow2), base(names.baseRaw), base(names.snapRaw), base(names.snapQcow2));
  const pair: DiskPair = {
    files: tree.files,
    dirs: tree.dirs,
    diskBytes,
    partition,
    ...names,
    expected: change.expected,
    snapAllocatedBytes: ownBytes(abs(names.snapQcow2)),
    snapFileBytes: fs.statSync(abs(names.snapQcow2)).size,
    baseFileBytes: fs.statSync(abs(names.baseQcow2)).size,
  };
  fs.writeFileSync(manifest, JSON.stringify({ version: DISKS_VERSION, pair }));
  return pair;
}
