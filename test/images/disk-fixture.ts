import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Runs a tool and returns its stdout; a failure throws with its stderr. */
export function run(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Whether a tool is on PATH (tests needing it skip without it). */
export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Root with loop devices and these tools: what the disk-image differential tests need. */
export function canLoopMount(...tools: string[]): boolean {
  return (!process.getuid || process.getuid() === 0) && fs.existsSync('/dev/loop-control') && tools.every(hasTool);
}

export interface PartitionWindow {
  start: number;
  size: number;
}

/** A GPT disk of `mib` MiB: a 1 MiB BIOS boot partition (#1) and a Linux filesystem partition (#2) taking the rest. */
export function makeGptDisk(file: string, mib: number): PartitionWindow {
  fs.closeSync(fs.openSync(file, 'w'));
  fs.truncateSync(file, mib * 1024 * 1024);
  execFileSync('sfdisk', ['-q', file], { input: 'label: gpt\nsize=1MiB, type=21686148-6449-6E6F-744E-656564454649\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' });
  const table = JSON.parse(run('sfdisk', ['-J', file])) as { partitiontable: { partitions: { start: number; size: number }[] } };
  const p = table.partitiontable.partitions[1];
  return { start: p.start * 512, size: p.size * 512 };
}

/** A sparse disk of `mib` MiB partitioned by an sfdisk script; every partition's window, in table order. */
export function partitionDisk(file: string, mib: number, script: string): PartitionWindow[] {
  fs.closeSync(fs.openSync(file, 'w'));
  fs.truncateSync(file, mib * 1024 * 1024);
  execFileSync('sfdisk', ['-q', file], { input: script });
  const table = JSON.parse(run('sfdisk', ['-J', file])) as { partitiontable: { partitions: { start: number; size: number }[] } };
  return table.partitiontable.partitions.map((p) => ({ start: p.start * 512, size: p.size * 512 }));
}

/** A loop device over a window of a disk (read-only with `readOnly`); `losetup -d` it when done. */
export function attachLoop(disk: string, w: PartitionWindow, readOnly = false): string {
  return run('losetup', [...(readOnly ? ['-r'] : []), '-o', String(w.start), '--sizelimit', String(w.size), '-f', '--show', disk]).trim();
}

/** Runs `fn` with a loop device over a window of a disk, always detached after. */
export function withLoop<T>(disk: string, w: PartitionWindow, fn: (dev: string) => T): T {
  const dev = attachLoop(disk, w);
  try {
    return fn(dev);
  } finally {
    run('losetup', ['-d', dev]);
  }
}

/**
 * Mounts a window of a disk read-write (a guest writing its filesystem),
 * read-only (the kernel's answer), or read-only from a writable device
 * ('rw-replay': the kernel replays a journal that needs recovery onto the
 * disk first, which it refuses to do on a read-only device), runs `fn`, and
 * always detaches.
 */
export async function withLoopMount<T>(disk: string, w: PartitionWindow, mode: 'rw' | 'ro' | 'rw-replay', fn: (mnt: string) => T | Promise<T>, extraOptions = ''): Promise<T> {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-loop-'));
  const dev = run('losetup', [...(mode === 'ro' ? ['-r'] : []), '-o', String(w.start), '--sizelimit', String(w.size), '-f', '--show', disk]).trim();
  try {
    run('mount', ['-o', `${mode === 'rw' ? 'rw' : 'ro'}${extraOptions ? `,${extraOptions}` : ''}`, dev, mnt]);
    try {
      return await fn(mnt);
    } finally {
      run('umount', [mnt]);
    }
  } finally {
    run('losetup', ['-d', dev]);
    fs.rmdirSync(mnt);
  }
}

/** Formats a window of a disk with mke2fs (options as given), through a loop device like an installer would. */
export function mkfs(disk: string, w: PartitionWindow, args: string[]): void {
  const dev = run('losetup', ['-o', String(w.start), '--sizelimit', String(w.size), '-f', '--show', disk]).trim();
  try {
    run('mke2fs', ['-q', '-F', ...args, dev]);
  } finally {
    run('losetup', ['-d', dev]);
  }
}

/**
 * fsync of every file and directory of a mounted filesystem: the data is
 * on disk and the metadata committed to the journal, but (unlike `sync`,
 * which also writes the block device's buffers back) not yet in place. A
 * copy of the disk taken now needs its journal replayed to show the tree.
 */
export function fsyncAll(mnt: string): void {
  const visit = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) visit(path.join(p, name));
    if (!st.isDirectory() && !st.isFile()) return;
    const fd = fs.openSync(p, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  };
  visit(mnt);
}

/**
 * A qcow2 snapshot over `backing` (in `dir`) that holds exactly the clusters
 * in which `after` differs from `before`, as a hypervisor's overlay holds
 * what its guest wrote. (`qemu-img convert -B` of a raw disk owns every
 * cluster, which hides how little a guest changed.) qemu-img compare checks
 * the result reads as `after`.
 */
export function snapshotFromRaw(dir: string, backing: string, before: string, after: string, out: string): void {
  const CLUSTER = 65536;
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${CLUSTER}`, '-b', backing, '-F', 'qcow2', out], dir);
  const parts = fs.mkdtempSync(path.join(dir, '.clusters-'));
  const fa = fs.openSync(before, 'r');
  const fb = fs.openSync(after, 'r');
  try {
    const size = fs.fstatSync(fb).size;
    const a = Buffer.alloc(CLUSTER);
    const b = Buffer.alloc(CLUSTER);
    const commands: string[] = [];
    let run0 = -1;
    const flush = (end: number): void => {
      if (run0 < 0) return;
      const data = Buffer.alloc(end - run0);
      fs.readSync(fb, data, 0, data.length, run0);
      const file = path.join(parts, String(commands.length));
      fs.writeFileSync(file, data);
      commands.push('-c', `write -q -s ${file} ${run0} ${data.length}`);
      run0 = -1;
    };
    for (let off = 0; off < size; off += CLUSTER) {
      const n = Math.min(CLUSTER, size - off);
      const na = fs.readSync(fa, a, 0, n, off);
      fs.readSync(fb, b, 0, n, off);
      const differs = na < n || a.compare(b, 0, n, 0, n) !== 0;
      if (differs && run0 < 0) run0 = off;
      if (!differs) flush(off);
    }
    flush(size);
    for (let i = 0; i < commands.length; i += 400) run('qemu-io', ['-f', 'qcow2', out, ...commands.slice(i, i + 400)], dir);
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
    fs.rmSync(parts, { recursive: true, force: true });
  }
  run('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'raw', out, after], dir);
}
