import { promises as fs } from 'node:fs';
import { errorMessage } from '@strata/errors';
import { writeFileAtomic } from '@strata/posix';
import type { HostUser } from '../access/host-user';

const FORMAT = 'strata-agent-desired';
const VERSION = 1;
/** Far more mounts than one host holds: a longer list is not one this agent wrote. */
const MAX_MOUNTS = 10_000;

/** One mount made with `strata mount`: what to mount again when no takeover put it back. */
export interface DesiredMount {
  layer: string;
  mountpoint: string;
  hard: boolean;
  /** Who asked (absent: root or the agent); their grant is asked again when it is restored. */
  caller?: HostUser;
}

function isDesired(v: unknown): v is DesiredMount {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as Record<string, unknown>;
  const caller = m.caller as Record<string, unknown> | undefined;
  return (
    typeof m.layer === 'string' &&
    m.layer !== '' &&
    typeof m.mountpoint === 'string' &&
    m.mountpoint.startsWith('/') &&
    typeof m.hard === 'boolean' &&
    (caller === undefined || (typeof caller === 'object' && caller !== null && Number.isSafeInteger(caller.uid) && Number.isSafeInteger(caller.gid) && Array.isArray(caller.groups)))
  );
}

/**
 * The mounts the operator asked for, kept across agents (and reboots): a
 * versioned file, replaced atomically at each change. Read problems are
 * told to `onProblem` and read as no mounts: the agent still starts.
 */
export class DesiredState {
  private mounts: DesiredMount[] = [];
  /** Writes one after another, in the order of the changes. */
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  async load(onProblem: (message: string) => void): Promise<DesiredMount[]> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') onProblem(`${this.file}: ${errorMessage(err)}`);
      return [];
    }
    try {
      const v = JSON.parse(text) as Record<string, unknown>;
      if (v.format !== FORMAT || v.version !== VERSION) throw new Error(`format ${JSON.stringify(v.format)} version ${JSON.stringify(v.version)}, not ${FORMAT} version ${VERSION}`);
      if (!Array.isArray(v.mounts) || v.mounts.length > MAX_MOUNTS) throw new Error('no list of mounts');
      this.mounts = v.mounts.filter(isDesired);
      if (this.mounts.length !== v.mounts.length) onProblem(`${this.file}: ${v.mounts.length - this.mounts.length} damaged entries left out`);
    } catch (err) {
      onProblem(`${this.file}: ${errorMessage(err)}`);
      this.mounts = [];
    }
    return [...this.mounts];
  }

  list(): DesiredMount[] {
    return [...this.mounts];
  }

  async add(m: DesiredMount): Promise<void> {
    this.mounts = [...this.mounts.filter((x) => x.mountpoint !== m.mountpoint), m];
    await this.save();
  }

  async remove(mountpoint: string): Promise<void> {
    if (!this.mounts.some((m) => m.mountpoint === mountpoint)) return;
    this.mounts = this.mounts.filter((m) => m.mountpoint !== mountpoint);
    await this.save();
  }

  private save(): Promise<void> {
    const text = `${JSON.stringify({ format: FORMAT, version: VERSION, mounts: this.mounts }, null, 2)}\n`;
    this.writing = this.writing.catch(() => undefined).then(() => writeFileAtomic(this.file, text));
    return this.writing;
  }
}
