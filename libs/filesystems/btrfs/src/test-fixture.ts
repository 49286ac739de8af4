/**
 * Test support (not exported from the package index): builds btrfs images
 * with mkfs.btrfs and fills them through the kernel's read-write loop mount,
 * as a guest would, then mounts them read-only (subvolid=5) for reference
 * answers. Every attach and mount is undone in a finally; every child
 * process has a timeout.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TIMEOUT = 60_000;

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input, timeout: TIMEOUT, maxBuffer: 64 << 20 });
}

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** Why kernel-backed tests cannot run here, or undefined when they can. */
export function kernelSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for loop mounts';
  if (!fs.existsSync('/dev/loop-control')) return 'no loop devices';
  for (const t of ['mkfs.btrfs', 'btrfs', 'losetup', 'mount', 'setfattr', 'fallocate', 'mknod']) if (!has(t)) return `${t} is not installed`;
  try {
    if (!fs.readFileSync('/proc/filesystems', 'utf8').includes('btrfs')) run('modprobe', ['btrfs']);
  } catch {
    return 'the kernel has no btrfs';
  }
  return undefined;
}

/** Why mkfs-only tests (mkfs.btrfs --rootdir, no mount) cannot run, or undefined. */
export function mkfsSkipReason(): string | undefined {
  if (!has('mkfs.btrfs')) return 'mkfs.btrfs is not installed';
  // mkfs.btrfs checks that the image is not mounted by reading every loop device's backing file, which fails for others' loops.
  if (process.getuid?.() !== 0) return 'needs root (mkfs.btrfs reads every loop device to check mount status)';
  return undefined;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function makeImage(dir: string, name: string, mib: number, mkfsArgs: string[], rootdir?: string): string {
  const image = path.join(dir, name);
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, mib * 1024 * 1024);
  run('mkfs.btrfs', ['-q', '-f', ...mkfsArgs, ...(rootdir ? ['--rootdir', rootdir] : []), image]);
  return image;
}

/** Loop-mounts the image (read-only device for 'ro'), runs fn, always unmounts and detaches. */
export async function withMount<T>(image: string, mode: 'rw' | 'ro', options: string, fn: (mnt: string) => T | Promise<T>): Promise<T> {
  const mnt = tempDir('btrfs-mnt-');
  let dev: string | undefined;
  let mounted = false;
  try {
    dev = run('losetup', [...(mode === 'ro' ? ['-r'] : []), '-f', '--show', image]).trim();
    run('mount', ['-t', 'btrfs', '-o', [mode, options].filter(Boolean).join(','), dev, mnt]);
    mounted = true;
    return await fn(mnt);
  } finally {
    if (mounted) run('umount', [mnt]);
    if (dev) run('losetup', ['-d', dev]);
    fs.rmdirSync(mnt);
  }
}

/** Deterministic bytes: compressible text when `text`, else pseudo-random (incompressible). */
export function bytes(n: number, seed: number, text: boolean): Buffer {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = text ? 0x61 + ((x >>> 16) % 4) + (i % 97 === 0 ? 1 : 0) : x >>> 24;
  }
  return b;
}

function write(p: string, data: Buffer | string): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
}

const ACL_USER_OBJ = 0x01;
const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;

/** A POSIX ACL in the xattr format (version 2; tag, perm, id per entry, sorted by tag and id), as setfattr's hex value. */
function aclHex(entries: [number, number, number?][]): string {
  const b = Buffer.alloc(4 + entries.length * 8);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + i * 8);
    b.writeUInt16LE(perm, 6 + i * 8);
    b.writeUInt32LE(id ?? 0xffffffff, 8 + i * 8);
  });
  return `0x${b.toString('hex')}`;
}

/** A unix socket file left behind: a child binds it and dies before it could unlink it. */
function makeSocket(p: string): void {
  try {
    execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, 'SIGKILL'))`], { timeout: 10_000, stdio: 'ignore' });
  } catch {
    // Killed on purpose.
  }
  if (!fs.lstatSync(p).isSocket()) throw new Error(`no socket at ${p}`);
}

/** Files whose extents the current compression mount option shapes: whole, mixed and partly overwritten. */
export function fillCompressed(dir: string, tag: string, seed: number): void {
  fs.mkdirSync(dir, { recursive: true });
  write(path.join(dir, `${tag}-text`), bytes(700 * 1024 + 123, seed, true));
  write(path.join(dir, `${tag}-small-inline`), bytes(3000, seed + 1, true));
  const mixed = Buffer.concat([bytes(200 * 1024, seed + 2, true), bytes(150 * 1024, seed + 3, false), bytes(300 * 1024 + 7, seed + 4, true)]);
  write(path.join(dir, `${tag}-mixed`), mixed);
  const over = path.join(dir, `${tag}-overwritten`);
  write(over, bytes(600 * 1024, seed + 5, true));
  run('sync', []);
  const fd = fs.openSync(over, 'r+');
  try {
    fs.writeSync(fd, bytes(5000, seed + 6, false), 0, 5000, 200 * 1024 + 100);
    fs.writeSync(fd, bytes(4096, seed + 7, true), 0, 4096, 500 * 1024);
  } finally {
    fs.closeSync(fd);
  }
}

/** The general tree: many files, a big directory, depth, links, specials, xattrs, ACLs, sparse and prealloc files, odd names and times. */
export function fillGeneral(root: string, bigDir: number): void {
  for (let i = 0; i < 60; i++) write(path.join(root, 'files', `f${i}`), bytes((i * 7919) % 20000, i, i % 2 === 0));
  write(path.join(root, 'files', 'empty'), '');
  write(path.join(root, 'files', 'big'), bytes(3 * 1024 * 1024 + 5, 99, false));
  const big = path.join(root, 'big');
  fs.mkdirSync(big);
  for (let i = 0; i < bigDir; i++) fs.writeFileSync(path.join(big, `entry-number-${i}-${'x'.repeat(i % 40)}`), i % 10 === 0 ? `${i}` : '');
  let deep = path.join(root, 'deep');
  for (let i = 0; i < 40; i++) deep = path.join(deep, `level${i}`);
  write(path.join(deep, 'bottom'), 'bottom\n');
  const links = path.join(root, 'links');
  write(path.join(links, 'target'), 'hard linked\n');
  for (let i = 0; i < 3; i++) fs.linkSync(path.join(links, 'target'), path.join(links, `hard${i}`));
  fs.mkdirSync(path.join(links, 'other'));
  fs.linkSync(path.join(links, 'target'), path.join(links, 'other', 'hard-elsewhere'));
  fs.symlinkSync('target', path.join(links, 'sym'));
  fs.symlinkSync('/nonexistent/' + 'long/'.repeat(300), path.join(links, 'sym-long'));
  fs.symlinkSync('../files/f1', path.join(links, 'sym-rel'));
  const special = path.join(root, 'special');
  fs.mkdirSync(special);
  run('mknod', [path.join(special, 'char'), 'c', '1', '3']);
  run('mknod', [path.join(special, 'block'), 'b', '259', '70000']);
  run('mknod', [path.join(special, 'fifo'), 'p']);
  makeSocket(path.join(special, 'sock'));
  const xa = path.join(root, 'xattrs');
  write(path.join(xa, 'one'), 'x');
  run('setfattr', ['-n', 'user.small', '-v', 'value', path.join(xa, 'one')]);
  run('setfattr', ['-n', 'user.binary', '-v', '0x00ff10', path.join(xa, 'one')]);
  run('setfattr', ['-n', 'trusted.t', '-v', 'trusted', path.join(xa, 'one')]);
  write(path.join(xa, 'bigvalue'), 'x');
  run('setfattr', ['-n', 'user.big', '-v', '0x' + bytes(3000, 5, true).toString('hex'), path.join(xa, 'bigvalue')]);
  write(path.join(xa, 'many'), 'x');
  for (let i = 0; i < 40; i++) run('setfattr', ['-n', `user.attr${i}`, '-v', `v${i}`, path.join(xa, 'many')]);
  write(path.join(xa, 'acl-file'), 'x');
  // ACLs through their xattrs (what setfacl writes), so the fill needs only setfattr.
  fs.chmodSync(path.join(xa, 'acl-file'), 0o644);
  run('setfattr', ['-n', 'system.posix_acl_access', '-v', aclHex([[ACL_USER_OBJ, 6], [ACL_USER, 6, 1234], [ACL_GROUP_OBJ, 4], [ACL_GROUP, 4, 55], [ACL_MASK, 6], [ACL_OTHER, 4]]), path.join(xa, 'acl-file')]);
  fs.mkdirSync(path.join(xa, 'acl-dir'));
  fs.chmodSync(path.join(xa, 'acl-dir'), 0o755);
  run('setfattr', ['-n', 'system.posix_acl_default', '-v', aclHex([[ACL_USER_OBJ, 7], [ACL_USER, 7, 1000], [ACL_GROUP_OBJ, 5], [ACL_MASK, 7], [ACL_OTHER, 5]]), path.join(xa, 'acl-dir')]);
  run('setfattr', ['-n', 'system.posix_acl_access', '-v', aclHex([[ACL_USER_OBJ, 7], [ACL_USER, 5, 1000], [ACL_GROUP_OBJ, 5], [ACL_MASK, 5], [ACL_OTHER, 5]]), path.join(xa, 'acl-dir')]);
  write(path.join(xa, 'acl-dir', 'inherits'), 'x');
  const sparse = path.join(root, 'sparse');
  fs.mkdirSync(sparse);
  const sp = path.join(sparse, 'holes');
  const fd = fs.openSync(sp, 'w');
  try {
    fs.writeSync(fd, bytes(10000, 1, false), 0, 10000, 1024 * 1024);
    fs.writeSync(fd, bytes(4096, 2, true), 0, 4096, 64 * 1024 * 1024);
    fs.ftruncateSync(fd, 1024 * 1024 * 1024 + 17);
  } finally {
    fs.closeSync(fd);
  }
  write(path.join(sparse, 'prealloc'), '');
  run('fallocate', ['-l', String(1024 * 1024), path.join(sparse, 'prealloc')]);
  write(path.join(sparse, 'prealloc-partly'), bytes(8192, 3, false));
  run('fallocate', ['-o', '65536', '-l', String(256 * 1024), path.join(sparse, 'prealloc-partly')]);
  const pfd = fs.openSync(path.join(sparse, 'prealloc-partly'), 'r+');
  try {
    fs.writeSync(pfd, bytes(4096, 4, false), 0, 4096, 100 * 1024);
  } finally {
    fs.closeSync(pfd);
  }
  write(path.join(sparse, 'prealloc-keep-size'), 'abc');
  run('fallocate', ['-n', '-o', '0', '-l', String(512 * 1024), path.join(sparse, 'prealloc-keep-size')]);
  const names = path.join(root, 'names');
  fs.mkdirSync(names);
  fs.writeFileSync(path.join(names, 'plain'), '');
  fs.writeFileSync(Buffer.concat([Buffer.from(names + '/bad-\xff\xfe-', 'latin1'), Buffer.from([0xc3, 0x28])]), 'not utf-8');
  fs.writeFileSync(path.join(names, 'ü-ñ-日本'), 'utf8');
  fs.writeFileSync(path.join(names, 'n'.repeat(255)), 'longest');
  const times = path.join(root, 'times');
  fs.mkdirSync(times);
  write(path.join(times, 'old'), 'old');
  run('touch', ['-h', '-d', '1901-12-14 20:45:52.123456789 UTC', path.join(times, 'old')]);
  write(path.join(times, 'future'), 'future');
  run('touch', ['-h', '-d', '2300-01-01 00:00:00.999999999 UTC', path.join(times, 'future')]);
  write(path.join(times, 'epoch'), 'epoch');
  run('touch', ['-h', '-d', '1970-01-01 00:00:00 UTC', path.join(times, 'epoch')]);
  fs.chownSync(path.join(times, 'epoch'), 4000000000, 12345);
  fs.chmodSync(path.join(times, 'future'), 0o4751);
}

/** Subvolumes, nested ones, snapshots (read-write and read-only) with stubs, a default subvolume. */
export function fillSubvolumes(root: string): void {
  const btrfs = (...args: string[]): string => run('btrfs', args);
  btrfs('subvolume', 'create', path.join(root, 'root'));
  write(path.join(root, 'root', 'etc', 'fstab'), 'UUID=x / btrfs defaults 0 0\n');
  write(path.join(root, 'root', 'data'), bytes(100000, 8, true));
  btrfs('subvolume', 'create', path.join(root, 'root', 'nested'));
  write(path.join(root, 'root', 'nested', 'inner'), 'inner');
  btrfs('subvolume', 'create', path.join(root, 'root', 'nested', 'deeper'));
  write(path.join(root, 'root', 'nested', 'deeper', 'file'), 'deeper');
  fs.mkdirSync(path.join(root, '.snapshots', '3'), { recursive: true });
  btrfs('subvolume', 'snapshot', path.join(root, 'root'), path.join(root, '.snapshots', '3', 'snapshot'));
  btrfs('subvolume', 'snapshot', '-r', path.join(root, 'root'), path.join(root, '.snapshots', 'ro'));
  write(path.join(root, 'root', 'after-snapshot'), 'changed later');
  fs.writeFileSync(path.join(root, 'root', 'data'), bytes(50000, 9, true));
  btrfs('subvolume', 'snapshot', path.join(root, 'root', 'nested'), path.join(root, 'root', 'nested-snap'));
  btrfs('subvolume', 'create', path.join(root, 'home'));
  write(path.join(root, 'home', 'user', 'file'), 'home file');
  const id = /Subvolume ID:\s*(\d+)/.exec(btrfs('subvolume', 'show', path.join(root, 'root')))?.[1];
  if (!id) throw new Error('no subvolume id for root');
  btrfs('subvolume', 'set-default', id, root);
  btrfs('subvolume', 'create', path.join(root, 'gone'));
  btrfs('subvolume', 'snapshot', root + '/home', path.join(root, 'home-snap'));
  btrfs('subvolume', 'delete', path.join(root, 'gone'));
  // A snapshot of the top level itself (every subvolume in it a stub), and a subvolume moved after creation.
  btrfs('subvolume', 'snapshot', '-r', root, path.join(root, '.snapshots', 'top'));
  fs.renameSync(path.join(root, 'home-snap'), path.join(root, '.snapshots', '3', 'home-snap-moved'));
}

/** st_dev of every path under a mount (path as readKernelTree keys it). */
export function kernelDevices(mnt: string): Map<string, number> {
  const out = new Map<string, number>();
  const root = Buffer.from(mnt);
  const visit = (rel: Buffer): void => {
    const real = rel.length === 1 ? root : Buffer.concat([root, rel]);
    const st = fs.lstatSync(real);
    out.set(rel.toString('latin1'), st.dev);
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(real, { encoding: 'buffer' })) visit(rel.length === 1 ? Buffer.concat([rel, n]) : Buffer.concat([rel, Buffer.from('/'), n]));
    }
  };
  visit(Buffer.from('/'));
  return out;
}

export function kernelStatfs(mnt: string): { bsize: number; frsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; namemax: number } {
  const [frsize, bsize, blocks, bfree, bavail, files, ffree, namemax] = run('stat', ['-f', '-c', '%S %s %b %f %a %c %d %l', mnt]).trim().split(' ').map(Number);
  return { bsize, frsize, blocks, bfree, bavail, files, ffree, namemax };
}
