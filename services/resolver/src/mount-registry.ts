import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { StrataError } from '@strata/errors';
import { writeFileAtomic } from '@strata/posix';

/** An agent's report stands this long unless renewed: a dead agent stops protecting its layers. */
export const DEFAULT_REPORT_TTL_S = 30;
const MAX_TTL_S = 3600;
const MAX_MOUNTS = 10_000;
const MAX_TEXT = 4096;

export interface ReportedMount {
  layerId: number;
  mountpoint: string;
}

export interface MountReport {
  agentId: string;
  host: string;
  mounts: ReportedMount[];
  /** Epoch milliseconds. */
  expiresAt: number;
}

/**
 * Which layers the fleet's mounts use, as their agents report them. Kept as
 * one small file per agent next to the catalog in the store, so every
 * resolver sharing the store sees every report whichever resolver took it.
 */
export class MountRegistry {
  private readonly dir: string;

  constructor(
    storeRoot: string,
    private readonly now: () => number = Date.now,
  ) {
    this.dir = path.join(storeRoot, '.strata', 'mounts');
  }

  private fileOf(agentId: string): string {
    return path.join(this.dir, `${createHash('sha256').update(agentId).digest('hex').slice(0, 32)}.json`);
  }

  /** Replaces the agent's report; an empty one removes it. */
  async report(agentId: string, host: string, mounts: readonly ReportedMount[], ttlSeconds: number): Promise<void> {
    if (agentId === '' || agentId.length > MAX_TEXT || host.length > MAX_TEXT) throw StrataError.invalid('agent_id must be 1 to 4096 characters, host at most 4096');
    if (mounts.length > MAX_MOUNTS) throw StrataError.invalid(`at most ${MAX_MOUNTS} mounts per report`);
    for (const m of mounts) {
      if (!Number.isSafeInteger(m.layerId) || m.layerId <= 0 || m.mountpoint.length > MAX_TEXT) throw StrataError.invalid('every mount needs a layer id and a mountpoint of at most 4096 characters');
    }
    const file = this.fileOf(agentId);
    if (mounts.length === 0) {
      await fs.rm(file, { force: true });
      return;
    }
    const ttl = Math.min(ttlSeconds > 0 ? ttlSeconds : DEFAULT_REPORT_TTL_S, MAX_TTL_S);
    const report: MountReport = { agentId, host, mounts: mounts.map((m) => ({ layerId: m.layerId, mountpoint: m.mountpoint })), expiresAt: this.now() + ttl * 1000 };
    await fs.mkdir(this.dir, { recursive: true });
    await writeFileAtomic(file, JSON.stringify(report));
  }

  /** The reports still standing; expired ones are removed on the way. */
  async current(): Promise<MountReport[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch {
      return [];
    }
    const out: MountReport[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const file = path.join(this.dir, name);
      try {
        const r = JSON.parse(await fs.readFile(file, 'utf8')) as MountReport;
        if (typeof r.expiresAt !== 'number' || !Array.isArray(r.mounts)) continue;
        if (r.expiresAt <= this.now()) {
          await fs.rm(file, { force: true });
          continue;
        }
        out.push(r);
      } catch {
        // A report being replaced or a stray file: not a mount.
      }
    }
    return out;
  }
}
