import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';

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

/** Unmounts; a busy mount is detached lazily instead. */
export async function unmountOrDetach(target: string): Promise<void> {
  await run('umount', [target]).catch(() => run('umount', ['-l', target]));
}

/**
 * Mounts lower layers (topmost first; relative to cwd so 128 of them fit in
 * one page of mount options) read-only with the kernel's overlayfs, the
 * ground truth of the differential tests and the limit of the benchmarks.
 * Returns the unmount function; callers put it in a finally.
 */
export async function mountOverlay(cwd: string, lowerTopFirst: string[], target: string, extraOptions: string[] = []): Promise<() => Promise<void>> {
  fs.mkdirSync(target, { recursive: true });
  const options = ['ro', `lowerdir=${lowerTopFirst.join(':')}`, ...extraOptions].join(',');
  await run('mount', ['-t', 'overlay', 'overlay', '-o', options, target], { cwd });
  return () => unmountOrDetach(target);
}
