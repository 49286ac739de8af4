/**
 * The kernel's readahead for a FUSE mount is its superblock's bdi
 * (`/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`). INIT can only lower it: the
 * kernel offers 128 KiB and takes the smaller of that and the answer. So a
 * buffered sequential reader's READs come as 128 KiB requests — eight round
 * trips per MiB where the session takes 1 MiB requests (max_pages) — unless
 * the bdi is raised after INIT, which only root may do.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { StrataError } from '@strata/errors';

/** The largest readahead a session asks (KiB): the kernel's own bound on read_ahead_kb is far above. */
export const READAHEAD_KB_MAX = 1 << 16;

/** Checks a readaheadKb option: an integer 0..READAHEAD_KB_MAX (0: the kernel's value kept). */
export function checkReadaheadKb(kb: number): number {
  if (!Number.isInteger(kb) || kb < 0 || kb > READAHEAD_KB_MAX) throw StrataError.invalid(`readaheadKb must be an integer 0..${READAHEAD_KB_MAX}, got ${kb}`);
  return kb;
}

function bdiFile(device: { major: number; minor: number }): string {
  return `/sys/class/bdi/${device.major}:${device.minor}/read_ahead_kb`;
}

/** The mount's readahead now (KiB), or undefined where sysfs does not say. */
export function readaheadOf(device: { major: number; minor: number }): number | undefined {
  try {
    const kb = Number(readFileSync(bdiFile(device), 'utf8').trim());
    return Number.isInteger(kb) ? kb : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sets the mount's readahead to kb (0 leaves it) and returns what holds
 * afterwards. A read-only /sys or a caller without the right keeps the
 * kernel's value: readahead is a matter of speed, never of what is read.
 */
export function setReadahead(device: { major: number; minor: number }, kb: number): number | undefined {
  if (kb > 0) {
    try {
      writeFileSync(bdiFile(device), String(kb));
    } catch {
      // the kernel's 128 KiB stays
    }
  }
  return readaheadOf(device);
}
