import { isCharStat } from './attr';
import type { LayerObject, SourceStat } from './source/layer-source';

/**
 * The on-disk conventions of Linux overlayfs and OCI layers. Both spellings
 * are accepted in every layer whose source follows them.
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
export function isWhiteoutDevice(st: SourceStat): boolean {
  return isCharStat(st) && st.rdev === 0n;
}

/** Attributes that belong to overlayfs itself and never show through. */
export function isOverlayPrivateXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** Attribute names of an object as the projection shows them: overlay-private ones left out where the layer follows the conventions. */
export async function visibleXattrNames(obj: LayerObject): Promise<string[]> {
  const names = await obj.layer.listXattrs(obj);
  return obj.layer.overlayRules ? names.filter((n) => !isOverlayPrivateXattr(n)) : names;
}

/** A directory that hides everything below it in lower layers. */
export async function isOpaqueDir(dir: LayerObject): Promise<boolean> {
  if (!dir.layer.overlayRules) return false;
  for (const name of OPAQUE_XATTRS) {
    const v = await dir.layer.getXattr(dir, name);
    if (v && v.length === 1 && v[0] === 0x79 /* 'y' */) return true;
  }
  return (await dir.layer.lookup(dir, OPAQUE_MARKER)) !== undefined;
}
