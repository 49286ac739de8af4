/**
 * Test support for journal recovery: an image mounted read-write with a long
 * commit interval (so committed metadata stays in the journal, not yet in
 * place), copies of its backing file taken while it is mounted (they need
 * recovery), and the kernel's answer for such a copy: a scratch copy on a
 * writable loop device mounted read-only, which makes the kernel replay
 * the journal onto it. Byte editors locate log blocks with debugfs.
 */
import { promises as fsp } from 'node:fs';
import fs from 'node:fs';
import path from 'node:path';
import { makeImage, makeTempDir, run, withMount } from '../fixture-image';
import { TreeSnapshot, kernelSnapshot } from '../tree-snapshot';
import type { Ext4StatFs } from '../types';

export interface LiveMount {
  mnt: string;
  dev: string;
  image: string;
  /** Unmounts and detaches (idempotent). */
  stop(): void;
}

/** Mounts the image read-write on a loop device; `commit=300` keeps committed transactions un-checkpointed. */
export async function mountLive(image: string, options: string[] = []): Promise<LiveMount> {
  const mnt = await makeTempDir('ext4-live-');
  const dev = run('losetup', ['-f', '--show', image]).trim();
  let mounted = false;
  const stop = (): void => {
    if (mounted) run('umount', [mnt]);
    mounted = false;
    if (fs.existsSync(dev)) run('losetup', ['-d', dev]);
    fs.rmSync(mnt, { recursive: true, force: true });
  };
  try {
    run('mount', ['-o', ['rw', 'commit=300', ...options].join(','), dev, mnt]);
    mounted = true;
  } catch (err) {
    stop();
    throw err;
  }
  return { mnt, dev, image, stop };
}

/**
 * fsync of every file and directory: data on disk, metadata committed to the
 * journal but not written in place (unlike sync/syncfs, which also write the
 * block device's buffers back).
 */
export function fsyncAll(root: string): void {
  const visit = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) visit(path.join(p, name));
    if (!st.isDirectory() && !st.isFile()) return;
    fsyncPath(p);
  };
  visit(root);
}

export function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A copy of the backing file as it is now (through the page cache the loop device writes to). */
export function copyImage(from: string, to: string): string {
  run('cp', ['--reflink=never', '--sparse=always', from, to]);
  return to;
}

export function kernelStatFs(mnt: string): Ext4StatFs {
  const [frsize, bsize, blocks, bfree, bavail, files, ffree, namemax] = run('stat', ['-f', '-c', '%S %s %b %f %a %c %d %l', mnt])
    .trim()
    .split(' ')
    .map(Number);
  return { bsize, frsize, blocks, bfree, bavail, files, ffree, namemax };
}

export interface KernelView {
  tree: TreeSnapshot;
  statfs: Ext4StatFs;
  /** The scratch image after the kernel's recovery and unmount. */
  recovered: string;
}

/**
 * The kernel's answer for an image needing recovery: a scratch copy on a
 * writable loop device, mounted read-only (recovery needs write access;
 * the scratch copy is what it writes). Throws the mount's error when the
 * kernel refuses the image.
 */
export async function kernelRecovered(image: string, scratch: string): Promise<KernelView> {
  copyImage(image, scratch);
  const mnt = await makeTempDir('ext4-recovered-');
  const dev = run('losetup', ['-f', '--show', scratch]).trim();
  let mounted = false;
  try {
    run('mount', ['-o', 'ro', dev, mnt]);
    mounted = true;
    return { tree: await kernelSnapshot(mnt), statfs: kernelStatFs(mnt), recovered: scratch };
  } finally {
    if (mounted) run('umount', [mnt]);
    run('losetup', ['-d', dev]);
    await fsp.rmdir(mnt).catch(() => undefined);
  }
}

/** Whether the kernel mounts the image (recovering it onto a scratch copy). */
export async function kernelMounts(image: string, scratch: string): Promise<boolean> {
  try {
    await kernelRecovered(image, scratch);
    return true;
  } catch {
    return false;
  } finally {
    await fsp.rm(scratch, { force: true });
  }
}

export interface LogRecord {
  /** Log block number. */
  block: number;
  sequence: number;
  type: 'descriptor' | 'commit' | 'revoke';
}

/** The log as debugfs's logdump walks it (an independent reading of the same journal). */
export function logdump(image: string): LogRecord[] {
  const out = run('debugfs', ['-R', 'logdump', image]);
  const records: LogRecord[] = [];
  for (const m of out.matchAll(/Found expected sequence (\d+), type \d+ \((descriptor|commit|revoke) (?:block|table)\) at block (\d+)/g)) {
    records.push({ sequence: Number(m[1]), type: m[2] as LogRecord['type'], block: Number(m[3]) });
  }
  return records;
}

/** Byte offset in the image of log block n (debugfs bmap of the journal inode). */
export function logBlockOffset(image: string, n: number, blockSize: number): number {
  const pblk = Number(run('debugfs', ['-R', `bmap <8> ${n}`, image]).trim());
  if (!Number.isSafeInteger(pblk) || pblk <= 0) throw new Error(`no physical block for log block ${n}`);
  return pblk * blockSize;
}

/** Reads-modifies-writes bytes of an image file in place. */
export function editImage(image: string, offset: number, length: number, edit: (buf: Buffer) => void): void {
  const fd = fs.openSync(image, 'r+');
  try {
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, offset);
    edit(buf);
    fs.writeSync(fd, buf, 0, length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** The tree before the guest's un-checkpointed work: written, then unmounted cleanly. */
export async function fillBase(mnt: string): Promise<void> {
  const p = (...parts: string[]): string => path.join(mnt, ...parts);
  await fsp.mkdir(p('keep'));
  for (let i = 0; i < 20; i++) await fsp.writeFile(p('keep', `k${i}`), patternText(`k${i}`, 100 + i * 300));
  await fsp.writeFile(p('log.txt'), 'line 0\n');
  await fsp.writeFile(p('to-rename'), 'renamed later');
  await fsp.writeFile(p('to-unlink'), patternText('unlink', 50_000));
  await fsp.mkdir(p('gone'));
  for (let i = 0; i < 200; i++) await fsp.writeFile(p('gone', `entry-with-a-long-name-${i}`), `${i}`);
  await fsp.writeFile(p('xattr-file'), 'x');
  run('setfattr', ['-n', 'user.old', '-v', 'old value', p('xattr-file')]);
  await fsp.writeFile(p('truncate-me'), patternText('trunc', 200_000));
}

/**
 * What the running guest does after it: create, append, rename, unlink,
 * mkdir, rmdir (its blocks are revoked), hard links, symlinks, xattrs,
 * truncation, ownership, mode and time changes; then everything is
 * fsynced (committed). `last-tx` is committed on its own afterwards, so
 * it is the log's last transaction.
 */
export async function mutate(mnt: string): Promise<void> {
  const p = (...parts: string[]): string => path.join(mnt, ...parts);
  await fsp.mkdir(p('new', 'deeper'), { recursive: true });
  for (let i = 0; i < 30; i++) await fsp.writeFile(p('new', `n${i}`), patternText(`n${i}`, i * 700));
  await fsp.writeFile(p('new', 'deeper', 'big'), patternText('big', 300_000));
  await fsp.appendFile(p('log.txt'), 'line 1\nline 2\n');
  await fsp.appendFile(p('keep', 'k3'), patternText('append', 9000));
  await fsp.rename(p('to-rename'), p('new', 'renamed'));
  await fsp.unlink(p('to-unlink'));
  for (let i = 0; i < 200; i++) await fsp.unlink(p('gone', `entry-with-a-long-name-${i}`));
  await fsp.rmdir(p('gone'));
  await fsp.link(p('keep', 'k1'), p('new', 'hard-k1'));
  await fsp.symlink('keep/k2', p('new', 'fast-link'));
  await fsp.symlink('t/'.repeat(60), p('new', 'slow-link'));
  run('setfattr', ['-n', 'user.new', '-v', 'new value', p('xattr-file')]);
  run('setfattr', ['-x', 'user.old', p('xattr-file')]);
  run('setfattr', ['-n', 'user.big', '-v', '0x' + Buffer.from(patternText('xb', 700)).toString('hex'), p('new', 'n5')]);
  await fsp.truncate(p('truncate-me'), 5000);
  await fsp.chmod(p('keep', 'k4'), 0o4711);
  await fsp.chown(p('keep', 'k5'), 1234, 5678);
  run('touch', ['-d', '2001-02-03 04:05:06.789', p('keep', 'k6')]);
  run('mknod', [p('new', 'fifo'), 'p']);
  fsyncAll(mnt);
  await fsp.writeFile(p('last-tx'), 'the last transaction');
  fsyncPath(p('last-tx'));
  fsyncPath(mnt);
}

function patternText(seed: string, length: number): string {
  let out = '';
  for (let i = 0; out.length < length; i++) out += `${seed}:${i};`;
  return out.slice(0, length);
}

/**
 * An image needing recovery: the base tree written and unmounted cleanly,
 * then the guest's work committed (not checkpointed) and the backing file
 * copied while still mounted. The caller stops `live`.
 */
export async function recoveryCopy(dir: string, name: string, sizeMiB: number, mkfs: string[], mount?: string[]): Promise<{ copy: string; live: LiveMount }> {
  const image = await makeImage(dir, `${name}.img`, sizeMiB, [...mkfs, '-E', 'lazy_itable_init=0,lazy_journal_init=0']);
  await withMount(image, false, fillBase);
  const live = await mountLive(image, mount);
  try {
    await mutate(live.mnt);
    return { copy: copyImage(image, path.join(dir, `${name}-copy.img`)), live };
  } catch (err) {
    live.stop();
    throw err;
  }
}
