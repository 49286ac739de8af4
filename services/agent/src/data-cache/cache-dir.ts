import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';

/** Where cached file data goes unless --data-cache-dir says: on disk, not under /run (a tmpfs: memory). */
export function defaultDataCacheRoot(): string {
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? '/var/cache/strata' : path.join(os.tmpdir(), `strata-agent-${uid}-cache`);
}

/**
 * The directory one agent owns inside the cache root: named after its
 * control socket, so agents of different sockets on one host never share,
 * while the next agent of the same socket (a restart, an upgrade, after a
 * crash) finds what its predecessor kept there. The root an operator names
 * is never emptied itself.
 */
export function agentDataDir(root: string, socket: string): string {
  const tag = createHash('sha256').update(path.resolve(socket)).digest('hex').slice(0, 12);
  return path.join(root, `agent-${tag}`);
}
