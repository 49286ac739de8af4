import * as fs from 'node:fs';
import * as fk from '@strata/fuse-kernel';
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

/** N2's HolderClient as the contract of issue 27 describes it. */
interface HolderClientApi {
  put(id: string, meta: Buffer, fds: number[]): Promise<void>;
  list(): Promise<{ id: string; meta: Buffer | Uint8Array | string; fds: number[] }[]>;
  drop(id: string): Promise<void>;
  startHeartbeat(timeoutMs: number): void;
  bye(): Promise<void>;
  close(): void | Promise<void>;
}

interface HolderClientClass {
  connect(socketPath: string, options?: { spawn?: boolean }): Promise<HolderClientApi>;
}

function parseMeta(raw: Buffer | Uint8Array | string): HeldMeta | undefined {
  try {
    const v = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8')) as Record<string, unknown>;
    if (typeof v.hard !== 'boolean' || typeof v.layer !== 'string' || typeof v.mountpoint !== 'string' || typeof v.record !== 'string') return undefined;
    return { hard: v.hard, layer: v.layer, mountpoint: v.mountpoint, record: v.record };
  } catch {
    return undefined;
  }
}

export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
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
  private constructor(private readonly client: HolderClientApi) {}

  /** Connects to (or spawns) the holder on `socketPath`; undefined, with the reason, where this build has none. */
  static async connect(socketPath: string): Promise<Holder | { unavailable: string }> {
    const cls = (fk as unknown as { HolderClient?: HolderClientClass }).HolderClient;
    if (!cls) return { unavailable: 'this build has no fd holder' };
    try {
      return new Holder(await cls.connect(socketPath, { spawn: true }));
    } catch (err) {
      return { unavailable: errorMessage(err) };
    }
  }

  async put(id: string, meta: HeldMeta, fds: number[]): Promise<void> {
    const bytes = Buffer.from(JSON.stringify(meta), 'utf8');
    if (bytes.length > 64 * 1024) throw new StrataError(Errno.EINVAL, `the holder's meta for ${meta.mountpoint} is ${bytes.length} bytes (64 KiB at most)`);
    await this.client.put(id, bytes, fds);
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

  async close(): Promise<void> {
    await this.client.close();
  }
}
