import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Errno, StrataError, errorMessage } from '@strata/errors';
import { StrataProcess, type StrataRole } from '@strata/launcher';
import { buildDemoStore } from './build-demo-store';

/**
 * `npm start`: the embedded default, end to end. Builds the demo store (a
 * VM disk as a qcow2 base and snapshot, and a `dir:` overlay of a config
 * fix), starts a resolver (in-process cache) and an agent as real
 * processes, mounts the overlay under ./mnt and waits; Ctrl-C (or SIGTERM)
 * unmounts and stops both.
 */

/** Starting includes the agent's first mount: allow for a slow first lookup. */
const READY_TIMEOUT_MS = 60_000;

/**
 * `strata <role> <args>`, logging to `logFile`, in its own process group so
 * that Ctrl-C reaches only the demo, which stops the agent before the resolver.
 */
function service(role: StrataRole, args: string[], logFile: string): StrataProcess {
  // Its own group for an orderly Ctrl-C; and it dies with the demo however the demo goes (`npm start | tee` and Ctrl-C kills tee first).
  return new StrataProcess({ role, args, logFile, detached: true, exitWithParent: true });
}

function tryLines(rows: [string, string][]): string[] {
  const width = Math.max(...rows.filter(([, why]) => why).map(([c]) => c.length));
  return rows.map(([c, why]) => (why ? `  ${c.padEnd(width)}  # ${why}` : `  ${c}`));
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The filesystem type mounted at `target` (the top one), or undefined. */
async function mountedAt(target: string): Promise<string | undefined> {
  const table = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  let type: string | undefined;
  for (const line of table.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash > 4 && unescapeMountPath(fields[4]) === target) type = fields[dash + 1];
  }
  return type;
}

/**
 * A demo that did not stop cleanly (killed, the machine's agent gone) leaves
 * its strata mount on ./mnt, where every access fails (ENOTCONN, or EIO from
 * the agent's fd holder): detached here, saying so. Anything else mounted
 * there is not the demo's to touch.
 */
async function clearStaleMount(mnt: string): Promise<void> {
  const type = await mountedAt(mnt);
  if (type === undefined) return;
  if (type !== 'fuse.strata') throw StrataError.precondition(`${mnt} is a mount point (${type}) that is not the demo's: unmount it or run the demo elsewhere`);
  const r = spawnSync('umount', ['-l', mnt], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw StrataError.precondition(`${mnt} is a strata mount left by an earlier run, and detaching it failed: ${(r.stderr || r.error?.message || '').trim()} (as root: umount -l ${mnt})`);
  process.stdout.write(`strata demo: ${path.relative(process.cwd(), mnt) || mnt} was still mounted by an earlier run that did not stop cleanly: detached it\n`);
}

async function main(): Promise<void> {
  // A reader of our stdout that went away (`| tee` killed by the same Ctrl-C) must not crash the demo before it has stopped its services.
  process.stdout.on('error', () => undefined);
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) {
    throw StrataError.precondition('mounting needs root and /dev/fuse (run as root; `npm run setup` installs fuse3)', Errno.EPERM);
  }
  const work = path.resolve('.demo');
  const mnt = path.resolve('mnt');
  await clearStaleMount(mnt);
  await fs.mkdir(mnt, { recursive: true });
  await fs.mkdir(work, { recursive: true });
  // Each step says what it does and how long it took: a fresh machine is slow the first time.
  const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    process.stdout.write(`strata demo: ${what}...\n`);
    const v = await fn();
    process.stdout.write(`strata demo: ${what}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    return v;
  };
  const demo = await step('building the demo store (a VM disk as qcow2 base and snapshot, a dir: fix)', () =>
    buildDemoStore(path.resolve(process.env.STRATA_STORE ?? path.join(work, 'store'))),
  );
  const socket = path.join(work, 'agent.sock');

  // Filled in as the services start; the signal handler stops what is running.
  const running: { resolver?: StrataProcess; agent?: StrataProcess } = {};
  let stopping = false;
  const stopAll = async (): Promise<void> => {
    await running.agent?.stop();
    await running.resolver?.stop();
  };
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${signal}: unmounting ${mnt} and stopping the agent and the resolver\n`);
    void stopAll().then(() => process.exit(0));
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  const resolver = (running.resolver = service('resolver', ['--store', demo.store, '--listen', '127.0.0.1:0'], path.join(work, 'resolver.log')));
  let address: string;
  let agent: StrataProcess;
  try {
    const listening = await step('starting the resolver', () => resolver.waitForEvent('resolver.listening', READY_TIMEOUT_MS));
    address = `127.0.0.1:${String(listening.port)}`;
    // --no-takeover: Ctrl-C unmounts (a stopping agent would otherwise leave ./mnt to a next one).
    agent = running.agent = service('agent', ['--resolver', address, '--socket', socket, '--no-takeover', '--mount', `${demo.fixed.name}:${mnt}`], path.join(work, 'agent.log'));
    await step(`starting the agent and mounting ${demo.fixed.name} on ${mnt}`, () => agent.waitForEvent('agent.ready', READY_TIMEOUT_MS));
  } catch (err) {
    // Ctrl-C during the start: the signal handler is already stopping both and exits 0.
    if (stopping) return;
    // A service that failed to start takes the other one down with it.
    await stopAll();
    throw err;
  }
  if (stopping) return;

  const rel = (p: string): string => path.relative(process.cwd(), p) || '.';
  const env = `STRATA_RESOLVER=${address} STRATA_AGENT_SOCKET=${rel(socket)}`;
  process.stdout.write(
    [
      `strata demo: resolver on ${address} (store ${rel(demo.store)}, in-process cache), agent socket ${rel(socket)}`,
      `mounted ${demo.fixed.name} (layer ${demo.fixed.layerId}: ${demo.base.name} <- ${demo.snapshot.name} <- ${demo.fixed.name}) on ${rel(mnt)}`,
      `  ${demo.base.name}: ${demo.base.source} (a GPT disk, ext4 root in partition 2)`,
      `  ${demo.snapshot.name}: ${demo.snapshot.source} (a qcow2 snapshot: only the clusters the VM changed)`,
      `  ${demo.fixed.name}: ${demo.fixed.source} (a config fix laid over the snapshot)`,
      '',
      'try, in another terminal:',
      ...tryLines([
        [`cat ${rel(mnt)}/etc/hostname ${rel(mnt)}/etc/motd`, 'written by the running VM before its snapshot'],
        [`cat ${rel(mnt)}/etc/ssh/sshd_config`, 'the fix from the dir: overlay'],
        [`ls ${rel(mnt)}/opt/legacy ${rel(mnt)}/var/log`, 'b.conf whited out by the fix; boot.log deleted by the VM'],
        [`touch ${rel(mnt)}/x`, 'Read-only file system'],
        [`${env} bin/strata diff ${demo.base.name} ${demo.snapshot.name}`, 'what the VM changed between the two disk images'],
        [`${env} bin/strata diff ${demo.snapshot.name} ${demo.fixed.name}`, 'what the fix changes'],
        [`${env} bin/strata ls ${demo.base.name} /etc`, 'any layer, through the API, no mount needed'],
        [`${env} bin/strata mounts`, ''],
      ]),
      '',
      `logs: ${rel(work)}/resolver.log, ${rel(work)}/agent.log. Ctrl-C unmounts and stops.`,
      '',
    ].join('\n'),
  );
  const died = await Promise.race([resolver.exit.then(() => 'resolver'), agent.exit.then(() => 'agent')]);
  if (!stopping) {
    await stopAll();
    throw StrataError.io(`the ${died} stopped unexpectedly; see ${rel(work)}/${died}.log`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`strata demo: ${errorMessage(err)}\n`);
  process.exit(1);
});
