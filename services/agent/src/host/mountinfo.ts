import { promises as fs } from 'node:fs';

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 6 || fields.length < dash + 3) continue;
    out.push({ mountpoint: unescape(fields[4]), fstype: fields[dash + 1], source: unescape(fields[dash + 2]) });
  }
  return out;
}

/** This process's mount table, read without touching any mount (safe with our own FUSE mounts). */
export async function readMountTable(): Promise<MountEntry[]> {
  return parseMountInfo(await fs.readFile('/proc/self/mountinfo', 'utf8'));
}

export const STRATA_FSTYPE = 'fuse.strata';

/** Whether the table holds a strata FUSE mount at exactly this path. */
export function hasStrataMount(table: MountEntry[], mountpoint: string): boolean {
  return table.some((t) => t.mountpoint === mountpoint && t.fstype === STRATA_FSTYPE);
}
