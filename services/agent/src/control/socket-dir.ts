import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { StrataError } from '@strata/errors';

/** What became of the socket's directory. */
export type SocketDirState = 'created' | 'tightened' | 'shared';

/**
 * The socket's directory, root-only (0700) or open to the socket's group
 * (0750, that group's): created so when missing, and made so when it holds
 * nothing but this agent's own files (`<socket>*`: the socket, its mounts
 * list, its audit log). Any other directory (/tmp, /run) is someone else's
 * and left as it is ('shared'): the socket's own mode then decides.
 */
export async function prepareSocketDir(socketPath: string, gid: number | undefined): Promise<SocketDirState> {
  const dir = path.dirname(socketPath);
  const mode = gid !== undefined ? 0o750 : 0o700;
  let st;
  try {
    st = await fs.lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw StrataError.from(err, `socket directory ${dir}`);
    await fs.mkdir(dir, { recursive: true, mode });
    await settle(dir, mode, gid);
    return 'created';
  }
  if (!st.isDirectory()) throw StrataError.notDir(`the socket's directory ${dir} is not a directory`);
  const base = path.basename(socketPath);
  const entries = await fs.readdir(dir);
  if (st.uid !== process.getuid?.() || !entries.every((e) => e.startsWith(base))) return 'shared';
  await settle(dir, mode, gid);
  return 'tightened';
}

async function settle(dir: string, mode: number, gid: number | undefined): Promise<void> {
  if (gid !== undefined) await fs.chown(dir, process.getuid?.() ?? 0, gid);
  // mkdir's mode went through the umask; this one does not.
  await fs.chmod(dir, mode);
}
