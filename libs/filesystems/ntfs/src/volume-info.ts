import { AttrType } from './attribute';
import { readAttr } from './attr-data';
import { applyFixups } from './fixup';
import { Inode, findAttr } from './inode';
import { utf16ToBytes } from './unicode';
import type { Volume } from './volume';

export const VOLUME_IS_DIRTY = 0x0001;

/** $Volume: the label and the flags word of $VOLUME_INFORMATION. */
export function volumeInfo(inode: Inode): { label: string; flags: number; version: string } {
  const name = findAttr(inode, AttrType.VOLUME_NAME)?.resident;
  const info = findAttr(inode, AttrType.VOLUME_INFORMATION)?.resident;
  return {
    label: name ? utf16ToBytes(name).toString('utf8') : '',
    flags: info && info.length >= 12 ? info.readUInt16LE(10) : 0,
    version: info && info.length >= 10 ? `${info[8]}.${info[9]}` : 'unknown',
  };
}

const LOGFILE_NO_CLIENT = 0xffff;
const RESTART_VOLUME_IS_CLEAN = 0x0002;

/**
 * Whether $LogFile's first restart area says the volume was not shut down
 * cleanly (a client in use without the clean flag), as ntfs-3g's
 * ntfs_is_logfile_clean judges it. A log reset by ntfs-3g or chkdsk (no
 * RSTR page) is clean.
 */
export async function logfileUnclean(vol: Volume, logfile: Inode): Promise<boolean> {
  const data = findAttr(logfile, AttrType.DATA);
  if (!data) return false;
  const head = await readAttr(vol, data, 0, 512);
  if (head.length < 512 || head.toString('latin1', 0, 4) !== 'RSTR') return false;
  const pageSize = head.readUInt32LE(0x10);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return false;
  const page = applyFixups(await readAttr(vol, data, 0, pageSize), '$LogFile restart page');
  const ra = page.readUInt16LE(0x18);
  if (ra + 0x10 > page.length) return false;
  const inUse = page.readUInt16LE(ra + 0x0c);
  const flags = page.readUInt16LE(ra + 0x0e);
  return inUse !== LOGFILE_NO_CLIENT && (flags & RESTART_VOLUME_IS_CLEAN) === 0;
}
