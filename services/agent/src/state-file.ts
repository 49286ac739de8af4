import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '@strata/posix';

interface State {
  mounts: { mountpoint: string; layerId: number }[];
}

/**
 * The mounts this agent owns, kept on disk so that an agent restarted after
 * a crash can clear the dead mounts its predecessor left behind.
 */
export class StateFile {
  constructor(readonly file: string) {}

  async read(): Promise<State['mounts']> {
    try {
      const state = JSON.parse(await fs.readFile(this.file, 'utf8')) as Partial<State>;
      return Array.isArray(state.mounts) ? state.mounts.filter((m) => typeof m.mountpoint === 'string') : [];
    } catch {
      return [];
    }
  }

  /** Atomic replace, so a crash mid-write leaves the old list or the new one. */
  async write(mounts: State['mounts']): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify({ mounts }, null, 2));
  }
}
