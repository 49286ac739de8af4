/**
 * /proc/self/mountinfo, read as bytes: a session recognises its own mount by
 * the device number the kernel gave its superblock, so it never unmounts
 * something else mounted later on the same path.
 */
import { readFileSync } from 'node:fs';

export interface MountEntry {
  mountId: number;
  major: number;
  minor: number;
  /** The mount point, unescaped, as bytes. */
  mountPoint: Buffer;
  fsType: string;
}

/** Undoes mountinfo's octal escapes (\040 for space, \011, \012, \134). */
function unescape(field: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < field.length; i++) {
    if (field[i] === '\\' && /^[0-7]{3}$/.test(field.slice(i + 1, i + 4))) {
      bytes.push(parseInt(field.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(field.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (fields.length < 10 || sep < 0) continue;
    const [major, minor] = fields[2].split(':').map((n) => Number(n));
    entries.push({ mountId: Number(fields[0]), major, minor, mountPoint: unescape(fields[4]), fsType: fields[sep + 1] });
  }
  return entries;
}

/** The mount on top at path (the last one mounted there), if any. */
export function topMountAt(path: Buffer, text?: string): MountEntry | undefined {
  const all = parseMountinfo(text ?? readFileSync('/proc/self/mountinfo', 'latin1'));
  let top: MountEntry | undefined;
  for (const e of all) if (e.mountPoint.equals(path)) top = e;
  return top;
}

/** Every mount of the superblock with this device number (where it is mounted now). */
export function mountsOfDevice(major: number, minor: number, text?: string): MountEntry[] {
  return parseMountinfo(text ?? readFileSync('/proc/self/mountinfo', 'latin1')).filter((e) => e.major === major && e.minor === minor);
}

/** Every mount of this file system type. */
export function mountsOf(fsType: string, text?: string): MountEntry[] {
  return parseMountinfo(text ?? readFileSync('/proc/self/mountinfo', 'latin1')).filter((e) => e.fsType === fsType);
}

/** Mount ids and device numbers are both reused once freed, the pair not while both mounts exist. */
export function mountKey(m: MountEntry): string {
  return `${m.mountId}:${m.major}:${m.minor}`;
}
