import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';

const run = promisify(execFile);

/** True when this process may mount overlayfs (root with the module available). */
export function canMountOverlay(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    return fs.readFileSync('/proc/filesystems', 'utf8').includes('overlay');
  } catch {
    return false;
  }
}

/**
 * Names a kernel overlay directory lists that can also be looked up: in a
 * directory only one layer supplies, the kernel lists stray whiteouts that
 * then fail lstat. They are not files, and strata does not list them.
 */
export function kernelListing(dir: Buffer): Buffer[] {
  return fs.readdirSync(dir, { encoding: 'buffer' }).filter((n) => {
    try {
      fs.lstatSync(Buffer.concat([dir, Buffer.from('/'), n]));
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Mounts lower layers (topmost first, relative to cwd so 128 of them fit in
 * one page of mount options) read-only with the kernel's overlayfs.
 * Returns the unmount function; callers put it in a finally.
 */
export async function mountOverlay(cwd: string, lowerTopFirst: string[], target: string, extraOptions: string[] = []): Promise<() => Promise<void>> {
  fs.mkdirSync(target, { recursive: true });
  const options = ['ro', `lowerdir=${lowerTopFirst.join(':')}`, ...extraOptions].join(',');
  await run('mount', ['-t', 'overlay', 'overlay', '-o', options, target], { cwd });
  return async () => {
    await run('umount', [target]).catch(() => run('umount', ['-l', target]));
  };
}
