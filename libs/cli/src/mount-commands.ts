import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { controlRequest, defaultSocketPath, forgetDesiredMount, type MountInfo } from '@strata/agent-control';
import { Errno, StrataError, isStrataError } from '@strata/errors';
import { CliError, type CommandContext } from './command-context';
import { mountTable } from './format';

interface SocketOption {
  socket?: string;
}

/** Mounting asks the agent for a layer lookup, a root stat and a kernel mount: allow for slow resolvers. */
const MOUNT_TIMEOUT_MS = 120_000;
const ANSWER_TIMEOUT_MS = 10_000;
/** How long a strata mount's server may take to answer an open before it counts as hung (not dead). */
const DEAD_PROBE_MS = 2_000;

/** Confirms from this process (never the agent's) that the new mount answers. */
async function mountAnswers(mountpoint: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StrataError(Errno.ETIMEDOUT, `${mountpoint} was mounted but does not answer`)), ANSWER_TIMEOUT_MS);
  });
  try {
    await Promise.race([fs.stat(mountpoint), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** statfs f_type of a FUSE filesystem (linux/magic.h). */
const FUSE_SUPER_MAGIC = 0x65735546;

/**
 * The kernel and FUSE refuse a bad mountpoint with errors that reach the
 * user as "fuse failed (EIO)"; said here, before the agent is asked.
 * `shown` is the path as the user typed it.
 */
export async function checkMountpoint(target: string, shown: string): Promise<void> {
  let st;
  try {
    st = await fs.stat(target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError(Errno.ENOENT, `mountpoint ${shown} does not exist`);
    if (code === 'ENOTDIR') throw new CliError(Errno.ENOTDIR, `mountpoint ${shown} is not a directory (a part of its path is a file)`);
    // Anything else (a dead FUSE mount answers ENOTCONN) is for the agent, which may clear it.
    return;
  }
  if (!st.isDirectory()) throw new CliError(Errno.ENOTDIR, `mountpoint ${shown} is not a directory`);
  // A mount point, or a directory inside a FUSE mount: the agent knows which (its own mount, a path
  // inside one, someone else's mount) and says so more precisely than "not empty".
  const parent = await fs.stat(path.dirname(target)).catch(() => undefined);
  if (parent && parent.dev !== st.dev) return;
  const fsType = await fs.statfs(target).then((s) => s.type, () => undefined);
  if (fsType === FUSE_SUPER_MAGIC) return;
  const dir = await fs.opendir(target).catch(() => undefined);
  // Unreadable to this user (the agent may still manage): the agent has the last word.
  if (!dir) return;
  try {
    if ((await dir.read()) !== null) throw new CliError(Errno.ENOTEMPTY, `mountpoint ${shown} is not empty`);
  } finally {
    await dir.close().catch(() => undefined);
  }
}

function noAgent(err: unknown): boolean {
  return isStrataError(err) && err.errno === Errno.ENOENT && /no agent is listening/.test(err.message);
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Whether `target` is a strata FUSE mount point of this mount namespace (fstype fuse.strata). */
async function isStrataMount(target: string): Promise<boolean> {
  const table = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return table.split('\n').some((line) => {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    return dash > 4 && unescapeMountPath(fields[4]) === target && fields[dash + 1] === 'fuse.strata';
  });
}

/**
 * Detaches a strata mount whose server is gone (every access ENOTCONN): what
 * the agent would do, when there is no agent. A mount that still answers has
 * a server (an agent on another socket) and is left to it. False when
 * `target` is no strata mount at all.
 */
async function detachDeadMount(target: string, socket: string): Promise<boolean> {
  if (!(await isStrataMount(target))) return false;
  // The agent of this socket made it (its list says so) and is gone: its fd holder may keep the mount answering, but nobody serves it.
  if (!(await ownedBy(socket, target))) {
  // Opening the directory always reaches the server (a stat may be answered from the kernel's attribute cache); bounded, a hung server is not waited for.
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<'silent'>((resolve) => (timer = setTimeout(() => resolve('silent'), DEAD_PROBE_MS)));
  const probe = fs.opendir(target).then(
    async (dir) => {
      await dir.close().catch(() => undefined);
      return 'answering' as const;
    },
    (err: NodeJS.ErrnoException) => (err.code === 'ENOTCONN' || err.code === 'ECONNABORTED' ? ('dead' as const) : ('answering' as const)),
  );
  const liveness = await Promise.race([probe, silent]).finally(() => clearTimeout(timer));
  if (liveness !== 'dead') {
    throw new CliError(Errno.EBUSY, `${target} is a strata mount whose server ${liveness === 'silent' ? 'is hung' : 'still answers'}: another agent serves it (give its --socket)`);
  }
  }
  const r = await new Promise<{ ok: boolean; text: string }>((resolve) =>
    execFile('umount', ['-l', target], { timeout: 10_000 }, (err, _o, stderr) => resolve({ ok: !err, text: String(stderr).trim() || (err ? err.message : '') })),
  );
  if (!r.ok) throw new CliError(Errno.EPERM, `${target} is a dead strata mount and no agent runs; detaching it failed: ${r.text} (as root: umount -l ${target})`);
  return true;
}

/** Whether the (stopped) agent of `socket` listed `target` among its mounts. */
async function ownedBy(socket: string, target: string): Promise<boolean> {
  try {
    const state = JSON.parse(await fs.readFile(`${socket}.mounts.json`, 'utf8')) as { mounts?: { mountpoint?: unknown }[] };
    return Array.isArray(state.mounts) && state.mounts.some((m) => m.mountpoint === target);
  } catch {
    return false;
  }
}

/** `strata mount|umount|mounts`: the local agent's control socket. */
export function addMountCommands(program: Command, ctx: CommandContext): void {
  const { out, json } = ctx;
  const socketOf = (cmd: Command): string => cmd.optsWithGlobals<SocketOption>().socket ?? defaultSocketPath();
  const socketHelp = 'agent control socket (default $STRATA_AGENT_SOCKET, else /run/strata/agent.sock)';

  program
    .command('mount')
    .description('ask the local agent to mount a layer read-only; returns once the mount answers')
    .argument('<layer>', 'id or name')
    .argument('<mountpoint>', 'an existing empty directory')
    .option('--hard', 'readers wait for the resolvers (and for the next agent) instead of failing with EIO after the agent\'s --request-timeout')
    .option('--socket <path>', socketHelp)
    .action(async (layer: string, mountpoint: string, o: { hard?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const target = path.resolve(mountpoint);
      await checkMountpoint(target, mountpoint);
      const res = await controlRequest(socketOf(cmd), { op: 'mount', layer, mountpoint: target, ...(o.hard === true ? { hard: true } : {}) }, MOUNT_TIMEOUT_MS);
      const m = res.mount!;
      await mountAnswers(m.mountpoint);
      if (g.json) await json(m);
      else await out(`mounted layer ${m.layerId}${m.layerName ? ` (${m.layerName})` : ''} on ${m.mountpoint}${m.live ? ' [live]' : ''}\n`);
    });
  program
    .command('umount')
    .description('ask the local agent to unmount a strata mount (with no agent running, a dead strata mount is detached directly)')
    .argument('<mountpoint>')
    .option('--lazy', 'detach now even if files are open (they keep working until closed)')
    .option('--socket <path>', socketHelp)
    .action(async (mountpoint: string, o: { lazy?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const target = path.resolve(mountpoint);
      let how = 'agent';
      try {
        await controlRequest(socketOf(cmd), { op: 'umount', mountpoint: target, lazy: o.lazy === true }, MOUNT_TIMEOUT_MS);
      } catch (err) {
        // No agent (it crashed or was killed): a strata mount it left dead is detached here, not stranded.
        if (!noAgent(err)) throw err;
        if (!(await detachDeadMount(target, socketOf(cmd)))) throw err;
        // Not mounted again by the next agent either.
        await forgetDesiredMount(socketOf(cmd), target);
        how = 'detached';
      }
      if (g.json) await json({ unmounted: target, ...(how === 'detached' ? { how: 'detached a dead mount; no agent was running' } : {}) });
      else await out(`unmounted ${target}${how === 'detached' ? ' (no agent was running: detached the dead mount)' : ''}\n`);
    });
  program
    .command('mounts')
    .description("the local agent's mounts")
    .option('--socket <path>', socketHelp)
    .action(async (_o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const res = await controlRequest(socketOf(cmd), { op: 'mounts' }, ANSWER_TIMEOUT_MS);
      const mounts: MountInfo[] = res.mounts ?? [];
      if (g.json) await json({ mounts });
      else await out(mounts.length === 0 ? 'no strata mounts\n' : `${mountTable(mounts)}\n`);
    });
}
