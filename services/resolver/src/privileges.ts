import { promises as fs } from 'node:fs';

/** Capability bits (linux/capability.h) the overlay rules and the store need. */
const CAP_DAC_READ_SEARCH = 2;
const CAP_SYS_ADMIN = 21;

/** What the resolver may see of the store, whoever it runs as. */
export interface Privileges {
  /** trusted.* xattrs (overlayfs' opaque markers and whiteouts by xattr) are visible only with CAP_SYS_ADMIN. */
  readsTrustedXattrs: boolean;
  /** Every file whatever its mode (a 0700 directory of a layer) only with CAP_DAC_READ_SEARCH, or as its owner. */
  readsEveryFile: boolean;
}

/** The effective capabilities of this process, from /proc/self/status (CapEff, hex). */
export async function readPrivileges(statusFile = '/proc/self/status'): Promise<Privileges> {
  let eff = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(await fs.readFile(statusFile, 'utf8'));
    if (m) eff = BigInt(`0x${m[1]}`);
  } catch {
    // No procfs: assume nothing, and say so at start.
  }
  const has = (bit: number): boolean => (eff & (1n << BigInt(bit))) !== 0n;
  return { readsTrustedXattrs: has(CAP_SYS_ADMIN), readsEveryFile: has(CAP_DAC_READ_SEARCH) };
}
