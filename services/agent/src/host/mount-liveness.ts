import { promises as fs } from 'node:fs';

export type MountLiveness = 'dead' | 'answering' | 'silent';

/** How long a mount's server may take to answer one open before it counts as silent (not dead: it may be busy). */
const ANSWER_MS = 2000;

/**
 * Whether a FUSE mount still has a server. A dead server's mount answers
 * ENOTCONN at once; a live one answers; a hung one is 'silent'. Opening the
 * directory always reaches the server (a stat may be answered from the
 * kernel's attribute cache). The call runs on libuv's thread pool, so even
 * a hung mount never blocks this thread, and the result is taken after
 * ANSWER_MS either way.
 */
export async function mountLiveness(mountpoint: string, answerMs = ANSWER_MS): Promise<MountLiveness> {
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<MountLiveness>((resolve) => {
    timer = setTimeout(() => resolve('silent'), answerMs);
  });
  const probe = fs.opendir(mountpoint).then(
    async (dir): Promise<MountLiveness> => {
      await dir.close().catch(() => undefined);
      return 'answering';
    },
    (err: NodeJS.ErrnoException): MountLiveness => (err.code === 'ENOTCONN' ? 'dead' : 'answering'),
  );
  try {
    return await Promise.race([probe, silent]);
  } finally {
    clearTimeout(timer);
  }
}
