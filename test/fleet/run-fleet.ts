/**
 * A strata fleet on this machine, for operators:
 *
 *   node test/dist/fleet/run-fleet.js [--hosts 4] [--seconds 20] [--kill-at 0.5]
 *     [--concurrency 4] [--dirs 600] [--files 4] [--resolver-cache-mb 1]
 *     [--verify-seconds 120] [--keep-logs DIR] [--json]
 *
 * Root, /dev/fuse, overlayfs, ip/nsenter and redis-server/redis-cli. Builds
 * the fleet in network namespaces (docs/fleet.md), runs the workload with a
 * resolver and a Redis node killed on the way, prints the report and
 * removes everything; exit 0 when every host saw the kernel's tree and no
 * read failed, 1 otherwise, 2 for bad arguments or an unsuitable machine.
 */
import { FLEET_DEFAULTS, MAX_HOSTS, fleetUnsupported, runFleet, type FleetOptions } from './fleet';
import { formatResult } from './report';

const USAGE = 'usage: run-fleet [--hosts N] [--seconds S] [--kill-at F] [--concurrency N] [--dirs N] [--files N] [--resolver-cache-mb N] [--verify-seconds S] [--keep-logs DIR] [--json]';

function parse(argv: string[]): (Omit<FleetOptions, 'say'> & { json: boolean }) | string {
  const o = { ...FLEET_DEFAULTS, json: false, keepLogs: undefined as string | undefined };
  const numbers: Record<string, 'hosts' | 'seconds' | 'killAt' | 'concurrency' | 'dirs' | 'files' | 'resolverCacheMb' | 'verifySeconds'> = {
    '--hosts': 'hosts',
    '--seconds': 'seconds',
    '--kill-at': 'killAt',
    '--concurrency': 'concurrency',
    '--dirs': 'dirs',
    '--files': 'files',
    '--resolver-cache-mb': 'resolverCacheMb',
    '--verify-seconds': 'verifySeconds',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') o.json = true;
    else if (a === '--help' || a === '-h') return USAGE;
    else if (a === '--keep-logs') {
      const v = argv[++i];
      if (!v) return `--keep-logs wants a folder\n${USAGE}`;
      o.keepLogs = v;
    } else if (a in numbers) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) return `${a} wants a positive number\n${USAGE}`;
      o[numbers[a]] = v;
    } else return `unknown argument ${a}\n${USAGE}`;
  }
  for (const k of ['hosts', 'concurrency', 'dirs', 'files', 'resolverCacheMb'] as const) if (!Number.isInteger(o[k])) return `--${k} wants an integer`;
  if (o.hosts > MAX_HOSTS) return `--hosts: at most ${MAX_HOSTS}`;
  if (o.killAt >= 1) return '--kill-at is a fraction of --seconds, below 1';
  return o;
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  if (typeof o === 'string') {
    process.stderr.write(`${o}\n`);
    return 2;
  }
  const why = fleetUnsupported();
  if (why) {
    process.stderr.write(`run-fleet: ${why}\n`);
    return 2;
  }
  const say = (line: string): void => void process.stderr.write(`fleet: ${line}\n`);
  const { result } = await runFleet({ ...o, say });
  process.stdout.write(o.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatResult(result)}\n`);
  return result.problems.length === 0 ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`run-fleet: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
