import { Errno, StrataError, isStrataError } from '@strata/errors';
import type { Layer } from '@strata/layers';

/** Reports are renewed this often and stand three times as long: an agent that died frees its layers within that. */
export const REPORT_INTERVAL_MS = 5000;
export const REPORT_TTL_S = 15;

export interface ReportedMount {
  mountpoint: string;
  layerId: number;
  /** The chain as it was mounted, this layer first. */
  chain: readonly Layer[];
}

export interface MountReporterOptions {
  /** The mounts as they are now. */
  mounts: () => ReportedMount[];
  /** Sends the report to a resolver (any: they share the store). */
  send: (mounts: readonly ReportedMount[], ttlSeconds: number) => Promise<void>;
  /** The layer's chain as the catalog has it now. */
  chainOf: (layerId: number) => Promise<Layer[]>;
  /** Takes a mount away whose layers were deleted or changed by force. */
  withdraw: (mountpoint: string, reason: string) => Promise<void>;
  /** Why a mount may no longer stay (a host user's grant was revoked), asked each round; undefined: it stays. */
  mayKeep?: (mountpoint: string) => Promise<string | undefined>;
  onError: (what: string, err: StrataError) => void;
  intervalMs?: number;
}

/** What of a layer makes the tree a mount shows: a rename changes nothing of it. */
function contentOf(l: Layer): string {
  return JSON.stringify([l.layerId, l.source, l.filesystemPath, l.layerType, l.baseLayerId, [...l.mountOptions].sort()]);
}

/**
 * Keeps the resolvers told which layers this agent's mounts use (so deleting
 * or changing one is refused unless forced), and withdraws a mount whose
 * layers were deleted or changed by force anyway: serving on would show a
 * half old, half new tree.
 */
export class MountReporter {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly o: MountReporterOptions) {}

  start(): void {
    const every = this.o.intervalMs ?? REPORT_INTERVAL_MS;
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  /** The mounts changed: report at once (a mount is protected as soon as it answers). */
  changed(): Promise<void> {
    return this.tick();
  }

  private tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.round().finally(() => {
      this.running = undefined;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.tick();
      }
    });
    return this.running;
  }

  private async round(): Promise<void> {
    const mounts = this.o.mounts();
    try {
      await this.o.send(mounts, REPORT_TTL_S);
    } catch (err) {
      this.o.onError('report', StrataError.from(err, 'reporting mounts'));
    }
    for (const m of mounts) {
      let reason: string | undefined;
      try {
        const now = await this.o.chainOf(m.layerId);
        if (now.length !== m.chain.length || now.some((l, i) => contentOf(l) !== contentOf(m.chain[i]))) {
          reason = `layer ${m.layerId} or a layer below it was changed by force`;
        }
      } catch (err) {
        if (isStrataError(err) && err.errno === Errno.ENOENT) reason = `layer ${m.layerId} or a layer below it was deleted by force`;
        // The agent's own read grant was revoked: what it holds cached must not keep answering.
        if (isStrataError(err) && err.errno === Errno.EACCES) reason = `the agent's access to layer ${m.layerId} was revoked`;
        // Resolvers away: keep serving; the mount's own requests say so.
      }
      reason ??= await this.o.mayKeep?.(m.mountpoint).catch(() => undefined);
      if (reason === undefined) continue;
      try {
        await this.o.withdraw(m.mountpoint, reason);
      } catch (err) {
        this.o.onError('withdraw', StrataError.from(err, `withdrawing ${m.mountpoint}`));
      }
    }
  }

  /** Stops reporting and clears the report, so the layers are free at once. */
  /**
   * `clear` false: the mounts were handed to the next agent, so the last
   * report stands (the successor's replaces it; its TTL ends it otherwise).
   */
  async stop(clear = true): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
    if (clear) await this.o.send([], REPORT_TTL_S).catch(() => undefined);
  }
}
