import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

/** Where `ip netns add` keeps the namespace handles. */
export const NETNS_DIR = '/run/netns';
/** Every namespace a fleet makes is named `strata-fleet-<run>-<role>`: stale ones are found by this prefix. */
export const FLEET_PREFIX = 'strata-fleet-';
/** The fleet's private subnet; it exists only inside the fleet's namespaces, so any number of fleets may use it at once. */
export const SUBNET = '10.213.0';

export class CommandError extends Error {}

/** Runs a command to completion; throws with its stderr on a non-zero exit. */
export function run(cmd: string, args: string[], timeoutMs = 30_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw new CommandError(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new CommandError(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** The command line that runs `argv` in network namespace `ns` and nothing else of it changed. */
export function inNetns(ns: string, argv: string[]): string[] {
  // Not `ip netns exec`: it also unshares the mount namespace (to remount /sys), so a FUSE
  // mount made under it would be invisible to everyone else. nsenter enters the network
  // namespace alone and execs, so the pid it returns is the program's own.
  return ['nsenter', `--net=${NETNS_DIR}/${ns}`, '--', ...argv];
}

export function listNetns(): string[] {
  try {
    return fs.readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

/** Pids of the processes living in a namespace (`ip netns pids`); empty when it is gone. */
export function pidsIn(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return r.stdout.split('\n').filter(Boolean).map(Number).filter((n) => n > 0);
}

/** Why this machine cannot build a fleet network, or undefined when it can. */
export function netnsUnsupported(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  for (const tool of ['ip', 'nsenter']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs ${tool}`;
  }
  const probe = `${FLEET_PREFIX}probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add failed: ${r.stderr.trim()}`;
  try {
    const v = spawnSync('ip', ['-n', probe, 'link', 'add', 'name', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1'], { encoding: 'utf8' });
    if (v.status !== 0) return `no veth pairs: ${v.stderr.trim()}`;
    const b = spawnSync('ip', ['-n', probe, 'link', 'add', 'name', 'br0', 'type', 'bridge'], { encoding: 'utf8' });
    if (b.status !== 0) return `no bridges: ${b.stderr.trim()}`;
  } finally {
    spawnSync('ip', ['netns', 'del', probe]);
  }
  return undefined;
}

export interface Member {
  /** Short role name, part of the namespace name: `res0`, `redis1`, `host3`. */
  role: string;
  /** Last octet of its address in SUBNET. */
  octet: number;
}

export interface MemberNetns extends Member {
  ns: string;
  address: string;
}

/**
 * A star of network namespaces: a hub namespace holding a bridge, and one
 * namespace per member joined to it by a veth pair, each with one address
 * of SUBNET. Everything is created inside the new namespaces (the veths in
 * the hub, one end then moved): the root namespace's links, addresses and
 * routes are never touched. Deleting the hub deletes every veth with it.
 */
export class FleetNetwork {
  readonly hub: string;
  readonly members = new Map<string, MemberNetns>();
  private readonly made: string[] = [];

  constructor(readonly runId: string) {
    this.hub = `${FLEET_PREFIX}${runId}-hub`;
  }

  /** Every namespace this network made so far (also a half-built one). */
  get namespaces(): string[] {
    return [...this.made];
  }

  create(members: Member[]): void {
    this.addNetns(this.hub);
    run('ip', ['-n', this.hub, 'link', 'set', 'lo', 'up']);
    run('ip', ['-n', this.hub, 'link', 'add', 'name', 'br0', 'type', 'bridge']);
    run('ip', ['-n', this.hub, 'link', 'set', 'br0', 'up']);
    members.forEach((m, i) => {
      const ns = `${FLEET_PREFIX}${this.runId}-${m.role}`;
      const address = `${SUBNET}.${m.octet}`;
      this.addNetns(ns);
      const veth = `v${i}`;
      run('ip', ['-n', this.hub, 'link', 'add', 'name', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      run('ip', ['-n', this.hub, 'link', 'set', veth, 'master', 'br0', 'up']);
      run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      this.members.set(m.role, { ...m, ns, address });
    });
  }

  member(role: string): MemberNetns {
    const m = this.members.get(role);
    if (!m) throw new Error(`no fleet member ${role}`);
    return m;
  }

  /** Kills whatever still lives in the namespaces, then deletes them (members first, the hub last). */
  destroy(): string[] {
    const problems: string[] = [];
    for (const ns of [...this.made].reverse()) problems.push(...deleteNetns(ns));
    this.made.length = 0;
    return problems;
  }

  private addNetns(ns: string): void {
    run('ip', ['netns', 'add', ns]);
    this.made.push(ns);
  }
}

/** SIGKILLs every process in `ns` and deletes it; returns what could not be done. */
export function deleteNetns(ns: string): string[] {
  const problems: string[] = [];
  // Up to 10 s: a SIGKILLed process in uninterruptible sleep (setns or exec on a loaded machine) exits only when it wakes.
  for (let round = 0; round < 200; round++) {
    const pids = pidsIn(ns);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    spawnSync('sleep', ['0.05']);
  }
  const left = pidsIn(ns);
  if (left.length > 0) problems.push(`processes ${left.join(',')} survive SIGKILL in ${ns}`);
  const r = spawnSync('ip', ['netns', 'del', ns], { encoding: 'utf8' });
  if (r.status !== 0 && fs.existsSync(`${NETNS_DIR}/${ns}`)) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  return problems;
}
