/**
 * Test support: builds ext2/3/4 images with mke2fs and fills them through
 * a read-write loop mount (so the kernel writes htree, nanoseconds, inline
 * data, extents as a guest would), then mounts them read-only for reference
 * answers. Every attach and mount is undone in a finally.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input, maxBuffer: 256 * 1024 * 1024 });
}

export async function makeTempDir(prefix: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
}

/** Attaches the image to a loop device, mounts it, runs fn on the mount point, then always unmounts and detaches. */
export async function withMount<T>(image: string, readOnly: boolean, fn: (mnt: string) => Promise<T>): Promise<T> {
  const mnt = await makeTempDir('ext4-mnt-');
  let dev: string | undefined;
  let mounted = false;
  try {
    dev = run('losetup', [...(readOnly ? ['-r'] : []), '-f', '--show', image]).trim();
    run('mount', ['-o', readOnly ? 'ro' : 'rw', dev, mnt]);
    mounted = true;
    return await fn(mnt);
  } finally {
    if (mounted) run('umount', [mnt]);
    if (dev) run('losetup', ['-d', dev]);
    await fsp.rmdir(mnt).catch(() => undefined);
  }
}

/** A sparse image file formatted by mke2fs with the given options (-F -q added). */
export async function makeImage(dir: string, name: string, sizeMiB: number, mkfsArgs: string[]): Promise<string> {
  const image = path.join(dir, name);
  const fh = await fsp.open(image, 'w');
  await fh.truncate(sizeMiB * 1024 * 1024);
  await fh.close();
  run('mke2fs', ['-F', '-q', ...mkfsArgs, image]);
  return image;
}

export function debugfs(image: string, request: string): string {
  return run('debugfs', ['-R', request, image]);
}
