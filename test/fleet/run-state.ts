import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FLEET_PREFIX, deleteNetns, listNetns } from './netns';

/**
 * What a fleet run leaves on the machine is found from its run id alone:
 * namespaces `strata-fleet-<id>-*` and the folder `<tmp>/strata-fleet-<id>`
 * (store, mountpoints, logs), which holds an `owner` file naming the process
 * that runs it. A run whose owner is gone (it crashed or was SIGKILLed) is
 * stale and the next run clears it; a live one, a concurrent fleet, is left.
 */
export function newRunId(): string {
  return randomBytes(4).toString('hex');
}

export function runDirOf(runId: string): string {
  return path.join(os.tmpdir(), `${FLEET_PREFIX}${runId}`);
}

/** Field 22 of /proc/PID/stat: with the pid, it names one process for good (pids are reused). */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function claimRunDir(runId: string): string {
  const dir = runDirOf(runId);
  fs.mkdirSync(dir, { recursive: false, mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'owner'), `${process.pid} ${startTimeOf(process.pid) ?? '?'}\n`);
  return dir;
}

function ownerAlive(runId: string): boolean {
  // The namespace probe of netnsUnsupported names its process in its id.
  const probe = /^probe-(\d+)$/.exec(runId);
  if (probe) return startTimeOf(Number(probe[1])) !== undefined;
  try {
    const [pid, start] = fs.readFileSync(path.join(runDirOf(runId), 'owner'), 'utf8').trim().split(' ');
    return startTimeOf(Number(pid)) === start;
  } catch {
    return false;
  }
}

/** Mount points at or under `dir`, deepest first (mountinfo field 5, octal escapes undone). */
export function mountsUnder(dir: string): string[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const mp = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(`${dir}/`)) out.add(mp);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** umount, then umount -l, of every mount under `dir`; returns the ones still there. */
export function unmountAllUnder(dir: string): string[] {
  for (const mp of mountsUnder(dir)) {
    if (spawnSync('umount', [mp], { stdio: 'ignore', timeout: 10_000 }).status !== 0) spawnSync('umount', ['-l', mp], { stdio: 'ignore', timeout: 10_000 });
  }
  return mountsUnder(dir);
}

/** Removes a run folder once nothing is mounted in it (a live mount there could be written through). */
export function removeRunDir(dir: string): string[] {
  const left = unmountAllUnder(dir);
  if (left.length > 0) return [`still mounted, ${dir} kept: ${left.join(', ')}`];
  fs.rmSync(dir, { recursive: true, force: true });
  return [];
}

/** The part of a fleet namespace name that names its run, or undefined for other namespaces. */
function runIdOfNetns(name: string): string | undefined {
  if (!name.startsWith(FLEET_PREFIX)) return undefined;
  const rest = name.slice(FLEET_PREFIX.length);
  const probe = /^(probe-\d+)$/.exec(rest);
  if (probe) return probe[1];
  const m = /^([0-9a-f]+)-[a-z0-9]+$/.exec(rest);
  return m?.[1];
}

export interface StaleReport {
  runs: string[];
  problems: string[];
}

/** Clears every fleet run whose owner is gone: its processes, mounts, namespaces and folder. */
export function clearStaleRuns(): StaleReport {
  const byRun = new Map<string, string[]>();
  for (const ns of listNetns()) {
    const id = runIdOfNetns(ns);
    if (id !== undefined) byRun.set(id, [...(byRun.get(id) ?? []), ns]);
  }
  for (const entry of fs.readdirSync(os.tmpdir())) {
    const m = new RegExp(`^${FLEET_PREFIX}([0-9a-f]+)$`).exec(entry);
    if (m && !byRun.has(m[1])) byRun.set(m[1], []);
  }
  const report: StaleReport = { runs: [], problems: [] };
  for (const [id, namespaces] of byRun) {
    if (ownerAlive(id)) continue;
    report.runs.push(id);
    // Processes first (an agent holds its mounts), then the mounts, then the namespaces and the folder; the hub goes last.
    const ordered = namespaces.sort((a, b) => Number(a.endsWith('-hub')) - Number(b.endsWith('-hub')));
    for (const ns of ordered) report.problems.push(...deleteNetns(ns));
    const dir = runDirOf(id);
    if (fs.existsSync(dir)) report.problems.push(...removeRunDir(dir));
  }
  return report;
}
