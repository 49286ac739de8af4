import * as fs from 'node:fs';
import { Errno, StrataError } from '@strata/errors';

/** CAP_SYS_ADMIN (linux/capability.h): mount(2) of a FUSE filesystem needs it. */
const CAP_SYS_ADMIN = 21n;
const FUSE_DEVICE = '/dev/fuse';

/** The process's effective capabilities from /proc/self/status, or undefined when it cannot be read. */
export function effectiveCapabilities(status: string): bigint | undefined {
  const m = /^CapEff:\s*([0-9a-fA-F]{1,16})\s*$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

const HOW = 'run the agent as root (or with CAP_SYS_ADMIN and read-write access to /dev/fuse)';

/**
 * Why this process cannot hold a FUSE mount, checked before anything is
 * created: an agent that cannot mount must say so at start and exit, not fail
 * (or worse) at its first mount. Undefined when it can.
 */
export function fuseAccessProblem(device = FUSE_DEVICE, status?: string): StrataError | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(device, fs.constants.O_RDWR);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    const errno = code === 'ENOENT' ? Errno.ENOENT : code === 'EACCES' || code === 'EPERM' ? Errno.EACCES : Errno.EIO;
    const why = code === 'ENOENT' ? 'does not exist (no FUSE in this kernel or container)' : `cannot be opened (${code})`;
    return new StrataError(errno, `cannot mount FUSE filesystems: ${device} ${why}; ${HOW}`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  let text = status;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/status', 'utf8');
    } catch {
      return undefined; // no /proc: mount(2) itself will say
    }
  }
  const caps = effectiveCapabilities(text);
  if (caps !== undefined && (caps & (1n << CAP_SYS_ADMIN)) === 0n) {
    return new StrataError(Errno.EPERM, `cannot mount FUSE filesystems: this process (uid ${process.getuid?.() ?? '?'}) lacks CAP_SYS_ADMIN, which mount(2) needs; ${HOW}`);
  }
  return undefined;
}
