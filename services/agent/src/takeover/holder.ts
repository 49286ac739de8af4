import { HolderClient, closeFd, type HolderMeta } from '@strata/fuse-kernel';
import { Errno, StrataError, errorMessage } from '@strata/errors';

/** What the agent puts beside each mount's fds in the holder (the holder reads only `hard`). */
export interface HeldMeta {
  hard: boolean;
  layer: string;
  mountpoint: string;
  /** The mount record's file. */
  record: string;
}

export interface HeldEntry {
  id: string;
  /** Undefined when the meta is not one this agent wrote. */
  meta: HeldMeta | undefined;
  fds: number[];
}

function parseMeta(v: HolderMeta): HeldMeta | undefined {
  if (typeof v.hard !== 'boolean' || typeof v.layer !== 'string' || typeof v.mountpoint !== 'string' || typeof v.record !== 'string') return undefined;
  return { hard: v.hard, layer: v.layer, mountpoint: v.mountpoint, record: v.record };
}

export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeFd(fd);
    } catch {
      // Already closed: nothing held.
    }
  }
}

/**
 * The agent's side of the fd holder: a small process of its own that keeps
 * every mount's /dev/fuse fds open while agents come and go, so a crash or
 * an upgrade loses no connection and no request in flight.
 */
export class Holder {
  private constructor(private readonly client: HolderClient) {}

  /** Connects to (or spawns) the holder on `socketPath` (its log lines appended to `logFile`); the reason when none can be had. */
  static async connect(socketPath: string, logFile: string, spawn = true): Promise<Holder | { unavailable: string }> {
    try {
      return new Holder(await HolderClient.connect(socketPath, { spawn, stderr: { file: logFile } }));
    } catch (err) {
      return { unavailable: errorMessage(err) };
    }
  }

  /** The holder's process id (tests, status). */
  async pid(): Promise<number> {
    return (await this.client.status()).pid;
  }

  async put(id: string, meta: HeldMeta, fds: number[]): Promise<void> {
    const bytes = Buffer.byteLength(JSON.stringify(meta));
    if (bytes > 64 * 1024) throw new StrataError(Errno.EINVAL, `the holder's meta for ${meta.mountpoint} is ${bytes} bytes (64 KiB at most)`);
    await this.client.put(id, { ...meta }, fds);
  }

  /** Every entry the holder keeps, with fds of this process's own (close them when done). */
  async list(): Promise<HeldEntry[]> {
    return (await this.client.list()).map((e) => ({ id: e.id, meta: parseMeta(e.meta), fds: e.fds }));
  }

  async drop(id: string): Promise<void> {
    await this.client.drop(id);
  }


  heartbeat(timeoutMs: number): void {
    this.client.startHeartbeat(timeoutMs);
  }

  /** Leaving on purpose (a handover): the holder keeps everything and waits for the successor. */
  async bye(): Promise<void> {
    await this.client.bye();
  }

  close(): void {
    this.client.close();
  }
}
