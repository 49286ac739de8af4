import { listenFds, sdRemoveFds, sdStoreFds, type ListenFd } from '@strata/fuse-kernel';
import { errorMessage } from '@strata/errors';

/** A mount's descriptors as systemd's fd store gave them back (FDNAME = the mount's id). */
export interface StoredMount {
  id: string;
  fds: number[];
}

/** An id this agent gives its mounts (anything else in the store is not the agent's). */
const MOUNT_ID = /^[0-9a-z-]{1,64}$/;

/** The passed fds grouped by name, in the order passed (a mount's master first, as stored). */
export function storedMounts(passed: readonly ListenFd[]): { mounts: StoredMount[]; others: ListenFd[] } {
  const byId = new Map<string, number[]>();
  const others: ListenFd[] = [];
  for (const p of passed) {
    if (!MOUNT_ID.test(p.name)) {
      others.push(p);
      continue;
    }
    const fds = byId.get(p.name) ?? [];
    fds.push(p.fd);
    byId.set(p.name, fds);
  }
  return { mounts: [...byId].map(([id, fds]) => ({ id, fds })), others };
}

/**
 * systemd's store of descriptors (FDSTORE=): where the service manager runs
 * the agent (NOTIFY_SOCKET set), each mount's fds are kept there too, so a
 * restarted agent has them even when the holder is gone. A refusal (the
 * unit's FileDescriptorStoreMax= is full or 0) is reported, never fatal.
 */
export class SystemdStore {
  private constructor(private readonly onProblem: (message: string) => void) {}

  /** Undefined outside systemd. */
  static open(onProblem: (message: string) => void): SystemdStore | undefined {
    const socket = process.env.NOTIFY_SOCKET;
    return socket === undefined || socket === '' ? undefined : new SystemdStore(onProblem);
  }

  /** What the previous agent stored, taken from LISTEN_FDS (the variables are removed, the fds close-on-exec). */
  taken(): StoredMount[] {
    try {
      const { mounts, others } = storedMounts(listenFds());
      if (others.length > 0) this.onProblem(`systemd passed ${others.length} descriptors that are not a mount's (${others.map((o) => o.name).join(', ')}): left alone`);
      return mounts;
    } catch (err) {
      this.onProblem(`LISTEN_FDS: ${errorMessage(err)}`);
      return [];
    }
  }

  store(id: string, fds: readonly number[]): boolean {
    try {
      return sdStoreFds(id, fds);
    } catch (err) {
      this.onProblem(`FDSTORE ${id}: ${errorMessage(err)}`);
      return false;
    }
  }

  remove(id: string): void {
    try {
      sdRemoveFds(id);
    } catch (err) {
      this.onProblem(`FDSTOREREMOVE ${id}: ${errorMessage(err)}`);
    }
  }
}
