import { promises as fs, type BigIntStats } from 'node:fs';
import { childPath } from './paths';
import { getXattr, listXattrs } from './xattr';

/**
 * The on-disk conventions of Linux overlayfs and OCI layers (DESIGN.md §3).
 * Both spellings are accepted in every layer.
 */

const WH_PREFIX = Buffer.from('.wh.');
const OPAQUE_MARKER = Buffer.from('.wh..wh..opq');
const OPAQUE_XATTRS = ['trusted.overlay.opaque', 'user.overlay.opaque'];

/** OCI whiteout names (".wh.<name>" and the opaque marker): never visible. */
export function isWhiteoutName(name: Buffer): boolean {
  return name.length >= WH_PREFIX.length && name.subarray(0, WH_PREFIX.length).equals(WH_PREFIX);
}

export function isOpaqueMarker(name: Buffer): boolean {
  return name.equals(OPAQUE_MARKER);
}

/** The name ".wh.<name>" that whites <name> out in OCI spelling. */
export function whiteoutNameFor(name: Buffer): Buffer {
  return Buffer.concat([WH_PREFIX, name]);
}

/** The name a ".wh.<name>" entry whites out. */
export function whitedOutName(whiteout: Buffer): Buffer {
  return whiteout.subarray(WH_PREFIX.length);
}

/** The kernel's whiteout: a character device 0/0. */
export function isWhiteoutDevice(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

/** Attributes that belong to overlayfs itself and never show through. */
export function isOverlayPrivateXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** Attribute names of a real object as the projection shows them: overlay-private ones left out. */
export function visibleXattrNames(real: Buffer): string[] {
  return listXattrs(real).filter((n) => !isOverlayPrivateXattr(n));
}

/** A directory that hides everything below it in lower layers. */
export async function isOpaqueDir(dir: Buffer): Promise<boolean> {
  for (const name of OPAQUE_XATTRS) {
    const v = getXattr(dir, name);
    if (v && v.length === 1 && v[0] === 0x79 /* 'y' */) return true;
  }
  return fs.lstat(childPath(dir, OPAQUE_MARKER)).then(
    () => true,
    () => false,
  );
}
