import { execFile } from 'node:child_process';
import { StrataError } from '@strata/errors';

/**
 * Unmounts with umount(8) in a child process: the agent's main thread serves
 * the mount's FUSE requests and must never block on the kernel itself.
 * Lazy detaches even a busy mount (shutdown, stale mounts).
 */
export function unmount(mountpoint: string, lazy: boolean): Promise<void> {
  const args = lazy ? ['-l', mountpoint] : [mountpoint];
  return new Promise((resolve, reject) => {
    execFile('umount', args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const text = String(stderr).trim() || err.message;
      const busy = /busy/i.test(text);
      reject(
        busy
          ? StrataError.precondition(`${mountpoint} is busy (open files or a working directory inside); close them or use --lazy`)
          : StrataError.io(`umount ${mountpoint}: ${text}`, { cause: err }),
      );
    });
  });
}
