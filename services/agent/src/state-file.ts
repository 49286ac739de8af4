import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '@strata/posix';

export interface OwnedMount {
  mountpoint: string;
  layerId: number;
}

interface State {
  /** The agent that wrote the file; absent in files of older agents. */
  pid?: number;
  mounts: OwnedMount[];
}

export interface StateSnapshot {
  pid: number | undefined;
  mounts: OwnedMount[];
}

/**
 * The mounts this agent owns, kept on disk so that an agent restarted after
 * a crash can clear the dead mounts its predecessor left behind. The
 * writer's pid lets a second agent see that the owner is still running and
 * keep its hands off.
 */
export class StateFile {
  constructor(readonly file: string) {}

  async read(): Promise<StateSnapshot> {
    try {
      const state = JSON.parse(await fs.readFile(this.file, 'utf8')) as Partial<State>;
      const mounts = Array.isArray(state.mounts) ? state.mounts.filter((m) => typeof m.mountpoint === 'string') : [];
      return { pid: Number.isSafeInteger(state.pid) ? state.pid : undefined, mounts };
    } catch {
      return { pid: undefined, mounts: [] };
    }
  }

  /** Atomic replace, so a crash mid-write leaves the old list or the new one. */
  async write(mounts: OwnedMount[]): Promise<void> {
    const state: State = { pid: process.pid, mounts };
    await writeFileAtomic(this.file, JSON.stringify(state, null, 2));
  }
}

/** Whether `pid` is a running strata agent other than this process (a reused pid of another program is not). */
export async function isLiveAgent(pid: number): Promise<boolean> {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else; still look at what it is.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const cmdline = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return cmdline.some((a) => /agent/.test(a));
  } catch {
    return false;
  }
}
