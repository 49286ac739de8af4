import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** Where the agent of `socket` keeps its runtime state (mount records, node journals, the fd holder's socket). */
export function agentStateDir(socket: string): string {
  return `${socket}.state`;
}

/** The mounts made with `strata mount` through `socket`'s agent, mounted again by the next agent when no takeover did. */
export function desiredStateFile(socket: string): string {
  return path.join(agentStateDir(socket), 'desired.json');
}

/**
 * Takes `mountpoint` out of the desired state of `socket`'s agent (a mount
 * detached while no agent ran must not come back with the next one). A file
 * that is absent or not one this version reads is left alone.
 */
export async function forgetDesiredMount(socket: string, mountpoint: string): Promise<void> {
  const file = desiredStateFile(socket);
  let state: { format?: unknown; version?: unknown; mounts?: unknown };
  try {
    state = JSON.parse(await fs.readFile(file, 'utf8')) as typeof state;
  } catch {
    return;
  }
  if (state.format !== 'strata-agent-desired' || state.version !== 1 || !Array.isArray(state.mounts)) return;
  const mounts = (state.mounts as { mountpoint?: unknown }[]).filter((m) => m.mountpoint !== mountpoint);
  if (mounts.length === state.mounts.length) return;
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify({ ...state, mounts }, null, 2)}\n`, { mode: 0o600 });
  await fs.rename(tmp, file);
}
