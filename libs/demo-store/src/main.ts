import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { errorMessage } from '@strata/errors';
import { buildDemoStore } from './build-demo-store';

/**
 * `npm start`: the embedded default, end to end. Builds the demo store,
 * starts a resolver (in-process cache) and an agent as real processes,
 * mounts the top snapshot under ./mnt and waits; Ctrl-C (or SIGTERM)
 * unmounts and stops both.
 */
const REPO = path.resolve(__dirname, '../../..');
const STRATA = path.join(REPO, 'bin/strata');

interface Service {
  child: ChildProcess;
  /** Resolves with the first JSON log line whose event is the one asked for. */
  waitFor(event: string): Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
}

/** Runs `strata <args>`, logs to `logFile`, and watches its JSON lines. */
function service(args: string[], logFile: string): Service {
  const child = spawn(process.execPath, [STRATA, ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const log = createWriteStream(logFile, { flags: 'a' });
  const lines: Record<string, unknown>[] = [];
  const waiters: { event: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  readline.createInterface({ input: child.stderr! }).on('line', (text) => {
    log.write(`${text}\n`);
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      line = { event: 'text', text };
    }
    lines.push(line);
    for (const w of waiters.filter((w) => w.event === line.event)) w.resolve(line);
  });
  return {
    child,
    exit,
    waitFor: (event) =>
      Promise.race([
        new Promise<Record<string, unknown>>((resolve) => {
          const seen = lines.find((l) => l.event === event);
          if (seen) resolve(seen);
          else waiters.push({ event, resolve });
        }),
        exit.then((code): never => {
          const last = lines.filter((l) => l.level === 'error' || l.event === 'text').map((l) => l.err ?? l.text ?? l.msg);
          throw new Error(`strata ${args[0]} exited (${code}) before ${event}: ${last.join('; ') || `see ${logFile}`}`);
        }),
      ]),
  };
}

function tryLines(rows: [string, string][]): string[] {
  const width = Math.max(...rows.filter(([, why]) => why).map(([c]) => c.length));
  return rows.map(([c, why]) => (why ? `  ${c.padEnd(width)}  # ${why}` : `  ${c}`));
}

async function stop(s: Service | undefined): Promise<void> {
  if (!s || s.child.exitCode !== null || s.child.signalCode !== null) return;
  s.child.kill('SIGTERM');
  await s.exit;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) {
    throw new Error('mounting needs root and /dev/fuse (run as root; `npm run setup` installs libfuse2 and fuse3)');
  }
  const work = path.resolve('.demo');
  const mnt = path.resolve('mnt');
  await fs.mkdir(mnt, { recursive: true });
  const demo = await buildDemoStore(path.resolve(process.env.STRATA_STORE ?? path.join(work, 'store')));
  const socket = path.join(work, 'agent.sock');

  // Filled in as the services start; the signal handler stops what is running.
  const running: { resolver?: Service; agent?: Service } = {};
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${signal}: unmounting ${mnt} and stopping the agent and the resolver\n`);
    void (async () => {
      await stop(running.agent);
      await stop(running.resolver);
      process.exit(0);
    })();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  const resolver = (running.resolver = service(['resolver', '--store', demo.store, '--listen', '127.0.0.1:0'], path.join(work, 'resolver.log')));
  const listening = await resolver.waitFor('resolver.listening');
  const address = `127.0.0.1:${String(listening.port)}`;
  const agent = (running.agent = service(['agent', '--resolver', address, '--socket', socket, '--mount', `${demo.snapshot2.name}:${mnt}`], path.join(work, 'agent.log')));
  await agent.waitFor('agent.ready');
  if (stopping) return;

  const rel = (p: string): string => path.relative(process.cwd(), p) || '.';
  const env = `STRATA_RESOLVER=${address} STRATA_AGENT_SOCKET=${rel(socket)}`;
  process.stdout.write(
    [
      `strata demo: resolver on ${address} (store ${rel(demo.store)}, in-process cache), agent socket ${rel(socket)}`,
      `mounted ${demo.snapshot2.name} (layer ${demo.snapshot2.layerId}: ${demo.base.name} <- ${demo.snapshot1.name} <- ${demo.snapshot2.name}) on ${rel(mnt)}`,
      '',
      'try, in another terminal:',
      ...tryLines([
        [`ls -la ${rel(mnt)} ${rel(mnt)}/opt/legacy`, 'opaque directory: only c.conf is left'],
        [`cat ${rel(mnt)}/etc/hostname ${rel(mnt)}/etc/motd`, ''],
        [`ls ${rel(mnt)}/var/log`, 'boot.log was whited out by snapshot 1'],
        [`touch ${rel(mnt)}/x`, 'Read-only file system'],
        [`${env} bin/strata mounts`, ''],
        [`${env} bin/strata diff ${demo.base.name} ${demo.snapshot2.name}`, ''],
        [`mkdir -p /tmp/base && ${env} bin/strata mount ${demo.base.name} /tmp/base`, ''],
      ]),
      '',
      `logs: ${rel(work)}/resolver.log, ${rel(work)}/agent.log. Ctrl-C unmounts and stops.`,
      '',
    ].join('\n'),
  );
  const died = await Promise.race([resolver.exit.then(() => 'resolver'), agent.exit.then(() => 'agent')]);
  if (!stopping) {
    await stop(agent);
    await stop(resolver);
    throw new Error(`the ${died} stopped unexpectedly; see ${rel(work)}/${died}.log`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`strata demo: ${errorMessage(err)}\n`);
  process.exit(1);
});
