/**
 * Test support (not exported from the package): builds XFS images with
 * mkfs.xfs, fills them through the kernel (a read-write loop mount) or from
 * a prototype file (no mount: v4, and the fuzz test without root), and
 * reads them back through a file. Every attach and mount is undone in a
 * finally; every child process has a timeout.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ByteSource } from '@strata/filesystem';

/** mkfs.xfs formats filesystems under 300 MB only for fstests, which it recognises by these variables. */
const SMALL_FS_ENV = { ...process.env, TEST_DIR: '1', TEST_DEV: '1', QA_CHECK_FS: '1' };

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input, timeout: 60_000, maxBuffer: 64 * 1024 * 1024, env: SMALL_FS_ENV });
}

export function hasTool(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** Why kernel tests cannot run here, or undefined when they can. */
export function kernelSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (loop mounts)';
  if (!hasTool('mkfs.xfs') || !hasTool('losetup')) return 'needs xfsprogs and losetup';
  if (!fs.readFileSync('/proc/filesystems', 'utf8').includes('xfs')) return 'kernel without xfs';
  return undefined;
}

export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A sparse image file of `sizeMiB` formatted by mkfs.xfs with the given options. */
export function makeImage(dir: string, name: string, sizeMiB: number, mkfsArgs: string[]): string {
  const image = path.join(dir, name);
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, sizeMiB * 1024 * 1024);
  run('mkfs.xfs', ['-q', '-f', ...mkfsArgs, image]);
  return image;
}

/**
 * Attaches the image to a loop device, mounts it, runs fn, then always
 * unmounts and detaches. 'rw' is a guest writing; 'ro' the kernel's answer;
 * 'recover' a read-only mount of a writable device, on which the kernel
 * replays a dirty log into the image first (it refuses to on a read-only one).
 */
export async function withMount<T>(image: string, mode: 'rw' | 'ro' | 'recover', fn: (mnt: string) => T | Promise<T>): Promise<T> {
  const mnt = makeTempDir('xfs-mnt-');
  let dev: string | undefined;
  let mounted = false;
  try {
    dev = run('losetup', [...(mode === 'ro' ? ['-r'] : []), '-f', '--show', image]).trim();
    // nouuid: XFS refuses a second mount of one UUID, and copies of an image (the truth beside the original,
    // other test files' images at the same moment) share theirs.
    run('mount', ['-t', 'xfs', '-o', mode === 'rw' ? 'rw,nouuid' : 'ro,nouuid', dev, mnt]);
    mounted = true;
    return await fn(mnt);
  } finally {
    if (mounted) run('umount', [mnt]);
    if (dev) run('losetup', ['-d', dev]);
    fs.rmdirSync(mnt);
  }
}

/** statfs(2) of a mount, as `stat -f` prints it. */
export function kernelStatFs(mnt: string): { bsize: number; frsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; namemax: number } {
  const [frsize, bsize, blocks, bfree, bavail, files, ffree, namemax] = run('stat', ['-f', '-c', '%S %s %b %f %a %c %d %l', mnt]).trim().split(' ').map(Number);
  return { bsize, frsize, blocks, bfree, bavail, files, ffree, namemax };
}

/** Deterministic pseudo-random bytes, so failures reproduce. */
export function patternBytes(length: number, seed: string): Buffer {
  const out = Buffer.alloc(length);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < length; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** A ByteSource over an image file. */
export class ImageFile implements ByteSource {
  private constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  static open(file: string): ImageFile {
    const fd = fs.openSync(file, 'r');
    return new ImageFile(fd, fs.fstatSync(fd).size);
  }

  read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    const n = fs.readSync(this.fd, buf, 0, length, offset);
    return Promise.resolve(n === length ? buf : buf.subarray(0, n));
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** A ByteSource over bytes in memory (the fuzz test mutates them). */
export class MemorySource implements ByteSource {
  constructor(readonly bytes: Buffer) {}

  get size(): number {
    return this.bytes.length;
  }

  read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || offset + length > this.bytes.length) return Promise.reject(new Error(`read past the end: ${offset}+${length}`));
    return Promise.resolve(Buffer.from(this.bytes.subarray(offset, offset + length)));
  }
}

export interface FillOptions {
  /** Entries in big/ (leaf/node directory forms, btree-mapped directory when large). */
  bigDir: number;
  /** Holes punched in a contiguous file: its extent count (a multi-level bmap btree when large). */
  fragments: number;
  /** Attributes on one file (shortform → leaf → node as it grows). */
  manyAttrs: number;
  /** The filesystem was made without reflink: no shared extents. */
  noReflink?: boolean;
}

async function makeSocket(p: string): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, () => resolve());
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Fills a read-write kernel mount with every case the reader must get right. */
export async function fillTree(mnt: string, opts: FillOptions): Promise<void> {
  const p = (...parts: string[]): string => path.join(mnt, ...parts);
  fs.mkdirSync(p('files'));
  for (const size of [0, 1, 100, 511, 4095, 4096, 4097, 65536, 100_000, 1_048_579, 3_000_000]) {
    fs.writeFileSync(p('files', `f${size}`), patternBytes(size, `f${size}`));
  }
  // Sparse: a few written bytes far apart, across the 4 GiB mark.
  const sparse = fs.openSync(p('files', 'sparse'), 'w');
  for (const off of [0, 5 * 4096 + 17, 2 ** 32 - 100, 5 * 2 ** 30 - 10]) fs.writeSync(sparse, patternBytes(10, `s${off}`), 0, 10, off);
  fs.closeSync(sparse);
  // Unwritten extents: preallocated, partly written, and preallocated past EOF.
  run('xfs_io', ['-f', '-c', 'falloc 0 1m', '-c', 'pwrite -q -S 0x61 64k 8k', '-c', 'falloc -k 1m 1m', p('files', 'prealloc')]);
  // Fragmented: a contiguous file with every other block punched out.
  if (opts.fragments > 0) {
    const file = p('files', 'fragmented');
    fs.writeFileSync(file, patternBytes(opts.fragments * 2 * 4096, 'frag'));
    const cmds: string[] = [];
    for (let i = 0; i < opts.fragments; i++) cmds.push('-c', `fpunch ${(2 * i + 1) * 4096} 4096`);
    for (let i = 0; i < cmds.length; i += 4000) run('xfs_io', [...cmds.slice(i, i + 4000), file]);
  }
  // Reflinks: shared blocks read like any others.
  if (!opts.noReflink) {
    run('cp', ['--reflink=always', p('files', 'f1048579'), p('files', 'reflinked')]);
    run('xfs_io', ['-c', 'reflink ' + p('files', 'f3000000') + ' 0 4096 65536', p('files', 'f100000')]);
  }

  fs.linkSync(p('files', 'f100'), p('files', 'hardlink'));
  fs.symlinkSync('f100', p('files', 'short-link'));
  fs.symlinkSync('x'.repeat(200) + '/' + 'y'.repeat(300), p('files', 'long-link'));
  fs.symlinkSync('z'.repeat(1023), p('files', 'longest-link'));
  fs.mkdirSync(p('dev'));
  run('mknod', [p('dev', 'null'), 'c', '1', '3']);
  run('mknod', [p('dev', 'sda1'), 'b', '8', '1']);
  run('mknod', [p('dev', 'wide'), 'c', '259', '65537']);
  run('mkfifo', [p('dev', 'fifo')]);
  await makeSocket(p('dev', 'socket'));

  // Names: every byte but '/' and NUL, invalid UTF-8, the longest.
  fs.mkdirSync(p('names'));
  fs.writeFileSync(Buffer.concat([Buffer.from(p('names') + '/'), Buffer.from([0xff, 0xfe, 0x80, 0x41])]), 'latin');
  fs.writeFileSync(p('names', 'n'.repeat(255)), 'long');
  fs.writeFileSync(p('names', 'ünïcödé ✓'), 'utf8');

  // Directory forms: shortform, block, leaf, node (and a btree-mapped one when big).
  for (const [name, count] of [['sf', 5], ['block', 40], ['leaf', 300]] as const) {
    fs.mkdirSync(p(name));
    for (let i = 0; i < count; i++) fs.writeFileSync(p(name, `entry-${i}-${'q'.repeat(i % 40)}`), '');
  }
  fs.mkdirSync(p('big'));
  for (let i = 0; i < opts.bigDir; i++) {
    // Small data files written between directory growth fragment the directory's blocks.
    fs.writeFileSync(p('big', `${String(i).padStart(6, '0')}-${'n'.repeat(60 + (i % 100))}`), i % 3 === 0 ? String(i) : '');
    if (i % 500 === 499) fs.rmSync(p('big', `${String(i - 250).padStart(6, '0')}-${'n'.repeat(60 + ((i - 250) % 100))}`));
  }
  // Deep tree.
  let deep = p('deep');
  for (let d = 0; d < 30; d++) {
    deep = path.join(deep, `level${d}`);
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, 'file'), `depth ${d}`);
  }

  // Attributes: shortform, leaf, node, remote values, every namespace, ACLs.
  fs.mkdirSync(p('attrs'));
  const small = p('attrs', 'small');
  fs.writeFileSync(small, '');
  run('setfattr', ['-n', 'user.a', '-v', 'b', small]);
  run('setfattr', ['-n', 'trusted.t', '-v', 'tt', small]);
  run('setfattr', ['-n', 'security.s', '-v', 'ss', small]);
  const remote = p('attrs', 'remote');
  fs.writeFileSync(remote, '');
  run('setfattr', ['-n', 'user.big', '-v', `0s${patternBytes(48000, 'v48').toString('base64')}`, remote]);
  run('setfattr', ['-n', 'user.max', '-v', `0s${patternBytes(65536, 'v64').toString('base64')}`, remote]);
  run('setfattr', ['-n', 'user.small', '-v', 'x', remote]);
  const many = p('attrs', 'many');
  fs.writeFileSync(many, '');
  // One setfattr --restore for them all (a process per attribute is slow).
  const dump = [`# file: ${many}`];
  for (let i = 0; i < opts.manyAttrs; i++) dump.push(`user.attr${i}-${'k'.repeat(i % 50)}="${'v'.repeat(1 + (i % 120))}"`);
  dump.push(`user.remote=0s${patternBytes(9000, 'r9').toString('base64')}`);
  run('setfattr', ['--restore=-'], dump.join('\n') + '\n\n');
  fs.mkdirSync(p('acl'));
  run('setfacl', ['-m', 'u:1000:rwx,g:100:r-x,u:4000000000:r', p('acl')]);
  run('setfacl', ['-d', '-m', 'u:1001:rw,o::-', p('acl')]);
  fs.writeFileSync(p('acl', 'inherits'), 'acl');
  fs.writeFileSync(p('acl', 'plain'), 'acl');
  run('setfacl', ['-b', p('acl', 'plain')]);

  // Owners and times: large ids, nanoseconds, before 1970, after 2038.
  fs.mkdirSync(p('meta'));
  const owned = p('meta', 'owned');
  fs.writeFileSync(owned, 'x');
  fs.chownSync(owned, 4_000_000_000, 65_534);
  fs.chmodSync(owned, 0o6751);
  for (const [name, date] of [['old', '1900-01-01 00:00:00.123456789'], ['epoch', '1970-01-01 00:00:00'], ['y2038', '2038-01-19 03:14:08'], ['future', '2200-01-01 12:00:00.5']] as const) {
    fs.writeFileSync(p('meta', name), name);
    run('touch', ['-h', '-d', `${date} UTC`, p('meta', name)]);
  }
  fs.utimesSync(p('meta'), new Date(1_234_567_890_123), new Date(987_654_321_987));
}

/**
 * An image populated by mkfs.xfs from a prototype file (no mount): the
 * source directory `src` is written into the new filesystem. Names must be
 * free of white space. Returns the image path.
 */
export function protoImage(dir: string, name: string, sizeMiB: number, mkfsArgs: string[], src: string): string {
  const lines = ['strata-proto', '0 0'];
  const walk = (at: string, indent: string): void => {
    for (const entry of fs.readdirSync(at).sort()) {
      const full = path.join(at, entry);
      const st = fs.lstatSync(full);
      const perm = (st.mode & 0o7777).toString(8).padStart(3, '0').slice(-3);
      const suid = st.mode & 0o4000 ? 'u' : '-';
      const sgid = st.mode & 0o2000 ? 'g' : '-';
      const head = `${indent}${entry} `;
      const ids = `${st.uid} ${st.gid}`;
      if (st.isDirectory()) {
        lines.push(`${head}d${suid}${sgid}${perm} ${ids}`);
        walk(full, indent + ' ');
        lines.push(`${indent}$`);
      } else if (st.isSymbolicLink()) {
        lines.push(`${head}l${suid}${sgid}${perm} ${ids} ${fs.readlinkSync(full)}`);
      } else if (st.isFile()) {
        lines.push(`${head}-${suid}${sgid}${perm} ${ids} ${full}`);
      } else if (st.isFIFO()) {
        lines.push(`${head}p${suid}${sgid}${perm} ${ids}`);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const major = Math.floor(st.rdev / 256) & 0xfff;
        const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
        lines.push(`${head}${st.isCharacterDevice() ? 'c' : 'b'}${suid}${sgid}${perm} ${ids} ${major} ${minor}`);
      }
    }
  };
  const root = fs.lstatSync(src);
  lines.push(`d--${(root.mode & 0o777).toString(8)} ${root.uid} ${root.gid}`);
  walk(src, ' ');
  lines.push('$');
  const protoFile = path.join(dir, `${name}.proto`);
  fs.writeFileSync(protoFile, lines.join('\n') + '\n');
  const image = path.join(dir, name);
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, sizeMiB * 1024 * 1024);
  run('mkfs.xfs', ['-q', '-f', ...mkfsArgs, '-p', protoFile, image]);
  return image;
}

/**
 * A guest's changes after the fill, then a crash: `xfs_io shutdown -f`
 * forces the log to disk and stops the filesystem before any metadata is
 * written back in place, so the image's log is dirty and holds all of it.
 */
export function changeThenCrash(mnt: string, scale = 1): void {
  const p = (...parts: string[]): string => path.join(mnt, ...parts);
  fs.mkdirSync(p('after', 'deep', 'er'), { recursive: true });
  for (let i = 0; i < 700 * scale; i++) fs.writeFileSync(p('after', `new-${i}-${'m'.repeat(i % 70)}`), i % 7 === 0 ? patternBytes(5000, `n${i}`) : '');
  for (const victim of fs.readdirSync(p('big')).filter((_, i) => i % 3 === 0).slice(0, 334)) fs.rmSync(p('big', victim));
  fs.renameSync(p('files', 'f4096'), p('after', 'deep', 'er', 'moved'));
  fs.appendFileSync(p('files', 'f100'), 'appended');
  fs.truncateSync(p('files', 'f1048579'), 5000);
  fs.linkSync(p('files', 'f65536'), p('after', 'second-name'));
  fs.symlinkSync('q'.repeat(600), p('after', 'remote-link'));
  run('setfattr', ['-n', 'user.added', '-v', 'later', p('files', 'f1')]);
  run('setfattr', ['-n', 'user.remote-later', '-v', `0s${patternBytes(20000, 'rl').toString('base64')}`, p('after', 'second-name')]);
  run('setfacl', ['-m', 'u:2000:r', p('after')]);
  run('touch', ['-h', '-d', '1969-07-20 20:17:40.5 UTC', p('after', 'deep')]);
  run('xfs_io', ['-f', '-c', 'falloc 0 256k', '-c', 'pwrite -q 4k 4k', p('after', 'prealloc')]);
  const frag = p('after', 'fragmented');
  fs.writeFileSync(frag, patternBytes(600 * scale * 8192, 'f2'));
  const cmds: string[] = [];
  for (let i = 0; i < 600 * scale; i++) cmds.push('-c', `fpunch ${(2 * i + 1) * 4096} 4096`);
  run('xfs_io', [...cmds, frag]);
  // Copy-on-write into a reflinked copy (refcount and CoW fork updates in the log), a deleted large file (extent frees).
  run('cp', ['--reflink=always', p('files', 'f3000000'), p('after', 'clone')]);
  const fd = fs.openSync(p('after', 'clone'), 'r+');
  for (let i = 0; i < 20; i++) fs.writeSync(fd, Buffer.alloc(4096, i + 1), 0, 4096, i * 65536);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.rmSync(p('files', 'reflinked'));
  // syncfs waits for the background inactivation of deleted files (their extent frees) and forces the log; nothing is
  // written back in place, so the log stays dirty. Without it the crash may land mid-free, which statfs only approximates.
  run('sync', ['-f', p('after')]);
  run('xfs_io', ['-x', '-c', 'shutdown -f', mnt]);
}

/** A file of `extents` one-block extents (every other block punched out of a contiguous write). */
export function fragmentedFile(file: string, extents: number): void {
  fs.writeFileSync(file, Buffer.alloc(extents * 8192, 0x5a));
  const cmds: string[] = [];
  for (let i = 0; i < extents; i++) cmds.push('-c', `fpunch ${(2 * i + 1) * 4096} 4096`);
  for (let i = 0; i < cmds.length; i += 4000) run('xfs_io', [...cmds.slice(i, i + 4000), file]);
}
