import type { Filesystem } from '@strata/filesystem';

/** The handle of a directory path inside a filesystem, names taken literally (no symlinks): undefined when missing. */
export async function lookupPath(fs: Filesystem, path: string): Promise<number | undefined> {
  let handle = fs.rootHandle;
  for (const name of path.split('/').filter((c) => c !== '' && c !== '.')) {
    const next = await fs.lookup(handle, Buffer.from(name));
    if (next === undefined) return undefined;
    handle = next;
  }
  return handle;
}
